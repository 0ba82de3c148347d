"""Per-stage configuration: what differs between dev, staging and prod, as arguments to the stack.

``stage_config("prod")`` returns the prod preset; any other well-formed name (``pr-42``, ``alice``) gets the
dev preset under its own name, so ephemeral stages are cheap and disposable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from aws_cdk import RemovalPolicy
from aws_cdk.aws_logs import RetentionDays

from earshot.config import Settings
from infra.constants import CATALOGS_DIR, FUNCTION_ACCESS, INFERENCE_VCPUS, LAMBDA_MB_PER_VCPU

_STAGE_NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

# Memory per function, in MB. Lambda's CPU share grows with memory: 1769 MB is one full vCPU, which the
# single-threaded embedded engines (recogniser, acoustic analyzer) use entirely; the other functions wait on
# DynamoDB or render JSON.
DEFAULT_MEMORY_MB: Mapping[str, int] = MappingProxyType(
    {
        "authorizer": 512,
        "account": 512,
        "models": 256,
        "openapi": 512,
        # Meter, bill and wait for the inference function (or an upstream); PyAV converts audio for upstreams.
        "transcriptions": 1769,
        "understand": 1769,
        "extract": 1769,
        # The workflow's steps around the engine: fetch, meter (ffprobe on up to 500 MB), bill, store, deliver.
        "workflow": 1769,
        # Plan a task (which builds the engine, importing the audio stack) and submit it; the engine runs later.
        "understanding": 1024,
        "ingest": 1024,
        "sweeper": 512,
        "uploads": 1024,
        # Reads task records; waits (long-poll, SSE) on DynamoDB.
        "tasks": 512,
        # The engines: as many full vCPUs as they use threads (infra.constants.INFERENCE_VCPUS, measured).
        "inference": INFERENCE_VCPUS * LAMBDA_MB_PER_VCPU,
    }
)


# Lambda keeps this much of an account's concurrency unreserved, whatever the functions ask for.
LAMBDA_MIN_UNRESERVED_CONCURRENCY = 100
# The default concurrency quota of an AWS account per region (raisable by a quota request).
DEFAULT_ACCOUNT_CONCURRENCY = 1000


@dataclass(frozen=True, kw_only=True)
class StageConfig:
    """Everything that differs between stages. Names and sizes that do not are in ``infra.constants``."""

    stage: str
    # Tables, buckets, log groups and keys: RETAIN keeps the data when the stack or resource goes away.
    removal_policy: RemovalPolicy
    point_in_time_recovery: bool = True
    deletion_protection: bool = False  # DynamoDB tables
    termination_protection: bool = False  # the CloudFormation stack
    log_retention: RetentionDays
    access_log_retention_days: int  # S3 server access logs
    memory_mb: Mapping[str, int] = field(default_factory=lambda: DEFAULT_MEMORY_MB)
    throttle_rate_limit: float  # requests per second, steady state, across the API's default stage
    throttle_burst_limit: int
    inbox_expiry_days: int = 1  # uploads under inbox/ are inputs to one request or task
    noncurrent_version_expiry_days: int  # the bucket is versioned; old versions are a safety net only
    # Reserved concurrency per function (functions not named share the account's unreserved pool). A reservation is
    # both a floor and a ceiling: the authorizer's guarantees every route can still be authorized under load; the
    # workflow's (runs up to 900 s), the long-polling tasks function's (25 s waits) and ingest's cap how much of the
    # pool slow work can take from the API routes. Their sum must leave Lambda's 100 unreserved.
    reserved_concurrency: Mapping[str, int] = field(default_factory=dict)
    account_concurrency: int = DEFAULT_ACCOUNT_CONCURRENCY  # the account's quota in the deployed region
    catalog_file: str | None = None  # a file in earshot/catalogs (shipped in the core layer); None: default.toml
    alarm_email: str | None = None  # subscribed to the alarm topic (confirm the e-mail AWS sends)

    def __post_init__(self) -> None:
        if not _STAGE_NAME.fullmatch(self.stage):
            raise ValueError(f"stage {self.stage!r}: 1-20 lower-case letters, digits or '-', starting with a letter")
        missing = sorted(set(FUNCTION_ACCESS) - set(self.memory_mb))
        if missing:
            raise ValueError(f"stage {self.stage!r} has no memory size for {', '.join(missing)}")
        if self.catalog_file is not None and not (CATALOGS_DIR / self.catalog_file).is_file():
            raise ValueError(f"catalog {self.catalog_file!r} is not a file in {CATALOGS_DIR}")
        if self.alarm_email is not None and not _EMAIL.fullmatch(self.alarm_email):
            raise ValueError(f"alarm e-mail {self.alarm_email!r} is not an e-mail address")
        if self.throttle_burst_limit < 1 or self.throttle_rate_limit <= 0:
            raise ValueError("throttling needs a positive rate and burst")
        unknown = sorted(set(self.reserved_concurrency) - set(FUNCTION_ACCESS))
        if unknown:
            raise ValueError(f"stage {self.stage!r} reserves concurrency for unknown function(s) {', '.join(unknown)}")
        if any(count < 1 for count in self.reserved_concurrency.values()):
            raise ValueError("a reservation of 0 would stop a function; leave it out to share the pool")
        reserved = sum(self.reserved_concurrency.values())
        if reserved > self.account_concurrency - LAMBDA_MIN_UNRESERVED_CONCURRENCY:
            raise ValueError(
                f"stage {self.stage!r} reserves {reserved} of the account's {self.account_concurrency} concurrent "
                f"executions; Lambda keeps {LAMBDA_MIN_UNRESERVED_CONCURRENCY} unreserved"
            )

    @property
    def catalog_path(self) -> Path:
        """The catalog this stage deploys: ``catalog_file``, or the core's shipped default."""
        if self.catalog_file is not None:
            return CATALOGS_DIR / self.catalog_file
        # The core's own default, without reading this machine's environment (EARSHOT_CATALOG).
        return Settings.model_construct(catalog=None).resolved_catalog()

    @property
    def auto_delete_objects(self) -> bool:
        """Empty the buckets on stack deletion, so a disposable stage really goes away."""
        return self.removal_policy == RemovalPolicy.DESTROY


DEV = StageConfig(
    stage="dev",
    removal_policy=RemovalPolicy.DESTROY,
    log_retention=RetentionDays.ONE_WEEK,
    access_log_retention_days=7,
    throttle_rate_limit=10,
    throttle_burst_limit=20,
    noncurrent_version_expiry_days=1,
    # Dev shares its account with other stages and people: small caps, so a runaway test cannot take it all.
    reserved_concurrency=MappingProxyType({"authorizer": 5, "workflow": 10, "tasks": 5, "ingest": 2, "inference": 20}),
)

STAGING = StageConfig(
    stage="staging",
    removal_policy=RemovalPolicy.DESTROY,
    log_retention=RetentionDays.ONE_MONTH,
    access_log_retention_days=30,
    throttle_rate_limit=50,
    throttle_burst_limit=100,
    noncurrent_version_expiry_days=7,
    reserved_concurrency=MappingProxyType(
        {"authorizer": 20, "workflow": 40, "tasks": 20, "ingest": 5, "inference": 100}
    ),
)

PROD = StageConfig(
    stage="prod",
    removal_policy=RemovalPolicy.RETAIN,
    deletion_protection=True,
    termination_protection=True,
    log_retention=RetentionDays.THREE_MONTHS,
    access_log_retention_days=365,
    throttle_rate_limit=200,
    throttle_burst_limit=400,
    noncurrent_version_expiry_days=30,
    # At 400 requests/s a 60 s authorizer cache and ~20 ms per decision need a few concurrent authorizers; 100 is a
    # generous floor. 150 concurrent task steps, 50 long-polls and 300 engine runs (sync chunks and task chunks:
    # a floor for the sync fan-out, a cap for the tasks' Map states) leave the other routes 1000 - 100 - 150 -
    # 50 - 20 - 300 = 380 of the default quota.
    reserved_concurrency=MappingProxyType(
        {"authorizer": 100, "workflow": 150, "tasks": 50, "ingest": 20, "inference": 300}
    ),
)

PRESETS: Mapping[str, StageConfig] = MappingProxyType({preset.stage: preset for preset in (DEV, STAGING, PROD)})


def stage_config(
    stage: str,
    *,
    alarm_email: str | None = None,
    catalog_file: str | None = None,
    account_concurrency: int | None = None,
) -> StageConfig:
    """The preset for ``stage`` (dev's for unknown names), with the optional overrides applied."""
    preset = PRESETS.get(stage, DEV)
    overrides: dict[str, object] = {"stage": stage}
    if account_concurrency is not None:
        overrides["account_concurrency"] = account_concurrency
    if alarm_email:
        overrides["alarm_email"] = alarm_email
    if catalog_file:
        overrides["catalog_file"] = catalog_file
    return replace(preset, **overrides)  # type: ignore[arg-type]
