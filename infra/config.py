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
from infra.constants import CATALOGS_DIR, FUNCTION_ACCESS

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
        "transcriptions": 1769,
        "understand": 1769,
        "extract": 1769,
        # Runs every workflow step, the engines included.
        "workflow": 1769,
        # Plan a task (which builds the engine, importing the audio stack) and submit it; the engine runs later.
        "understanding": 1024,
        "ingest": 1024,
        "sweeper": 512,
        "uploads": 1024,
        # Reads task records; waits (long-poll, SSE) on DynamoDB.
        "tasks": 512,
    }
)


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
)

STAGING = StageConfig(
    stage="staging",
    removal_policy=RemovalPolicy.DESTROY,
    log_retention=RetentionDays.ONE_MONTH,
    access_log_retention_days=30,
    throttle_rate_limit=50,
    throttle_burst_limit=100,
    noncurrent_version_expiry_days=7,
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
)

PRESETS: Mapping[str, StageConfig] = MappingProxyType({preset.stage: preset for preset in (DEV, STAGING, PROD)})


def stage_config(stage: str, *, alarm_email: str | None = None, catalog_file: str | None = None) -> StageConfig:
    """The preset for ``stage`` (dev's for unknown names), with the optional overrides applied."""
    preset = PRESETS.get(stage, DEV)
    overrides: dict[str, object] = {"stage": stage}
    if alarm_email:
        overrides["alarm_email"] = alarm_email
    if catalog_file:
        overrides["catalog_file"] = catalog_file
    return replace(preset, **overrides)  # type: ignore[arg-type]
