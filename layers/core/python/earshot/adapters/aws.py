"""Wires the AWS adapters: DynamoDB for the ``AccountStore``, S3 for the ``BlobStore``.

Called once per warm Lambda by ``earshot.runtime``; each client is built on its first call, never at
import time.
"""

from __future__ import annotations

from threading import Lock
from typing import Any

import boto3
from botocore.config import Config

from earshot.adapters.dynamo_layout import (
    ACCOUNTS,
    API_KEYS,
    IDEMPOTENCY,
    LEDGER,
    RATE_LIMITS,
    STEP_MARKERS,
    TASK_EVENTS,
    TASKS,
)
from earshot.adapters.dynamo_store import DynamoStore
from earshot.adapters.job_starters import StepFunctionsJobStarter
from earshot.adapters.s3_blobs import S3BlobStore
from earshot.config import Settings
from earshot.ports import AccountStore, BlobStore, RateLimiter

# Short timeouts and few retries: a request has a 30 s gateway budget, and the SDK's retries are
# part of the "at most 3 attempts across all layers" rule.
_CLIENT_CONFIG = Config(
    connect_timeout=3,
    read_timeout=10,
    retries={"mode": "standard", "max_attempts": 3},
)


class _LazyClient:
    """A boto3 client built on first use, so a function that only reads the bucket never pays the
    cold-start cost of building the DynamoDB client (and the other way round)."""

    def __init__(self, session: boto3.session.Session, service: str) -> None:
        self._session = session
        self._service = service
        self._client: Any = None
        self._lock = Lock()

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            with self._lock:  # clients are thread-safe; building one from a shared session is not
                if self._client is None:
                    self._client = self._session.client(self._service, config=_CLIENT_CONFIG)
        return getattr(self._client, name)


def _required(value: str | None, env_var: str) -> str:
    if not value:
        raise RuntimeError(f"{env_var} is not set: the aws runtime needs it (the CDK stack sets it on every function)")
    return value


def build_aws_ports(settings: Settings) -> tuple[AccountStore, BlobStore]:
    """The deployed store and blob store, for the tables and bucket named in ``settings``.

    Raises
    ------
    RuntimeError
        When a table or the bucket is not named in the environment.
    """
    accounts_table = _required(settings.accounts_table, ACCOUNTS.env_var)
    api_keys_table = _required(settings.api_keys_table, API_KEYS.env_var)
    ledger_table = _required(settings.ledger_table, LEDGER.env_var)
    bucket_name = _required(settings.bucket_name, "EARSHOT_BUCKET_NAME")
    # Our own session rather than boto3's module-level default, which is not safe to share between threads.
    session = boto3.session.Session()
    store = DynamoStore(
        _LazyClient(session, "dynamodb"),
        accounts_table=accounts_table,
        api_keys_table=api_keys_table,
        ledger_table=ledger_table,
    )
    blobs = S3BlobStore(bucket_name, _LazyClient(session, "s3"))
    return store, blobs


def build_aws_rate_limiter(settings: Settings) -> RateLimiter:
    """Per-key request counters on the rate-limits table named in ``settings``."""
    from earshot.adapters.rate_limits import DynamoRateLimiter

    table = _required(settings.rate_limits_table, RATE_LIMITS.env_var)
    return DynamoRateLimiter(_LazyClient(boto3.session.Session(), "dynamodb"), table)


def build_inference_invoker(function_name: str) -> Any:
    """Invokes the inference function (``earshot.engines.remote.Invoker``)."""
    from earshot.adapters.lambda_invoker import LambdaInvoker

    return LambdaInvoker(boto3.session.Session(), function_name)


def build_aws_task_stores(settings: Settings) -> tuple[Any, Any]:
    """The task store (tasks, events, step markers) and the idempotency store on DynamoDB."""
    from earshot.adapters.dynamo_tasks import DynamoIdempotencyStore, DynamoTaskStore

    client = _LazyClient(boto3.session.Session(), "dynamodb")
    tasks = DynamoTaskStore(
        client,
        tasks_table=_required(settings.tasks_table, TASKS.env_var),
        events_table=_required(settings.task_events_table, TASK_EVENTS.env_var),
        steps_table=_required(settings.step_markers_table, STEP_MARKERS.env_var),
    )
    idempotency = DynamoIdempotencyStore(client, table=_required(settings.idempotency_table, IDEMPOTENCY.env_var))
    return tasks, idempotency


def build_aws_job_starter(settings: Settings) -> StepFunctionsJobStarter:
    arn = _required(settings.state_machine_arn, "EARSHOT_STATE_MACHINE_ARN")
    return StepFunctionsJobStarter(_LazyClient(boto3.session.Session(), "stepfunctions"), arn)
