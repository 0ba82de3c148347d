"""Fixtures for the contract suite: every test here runs once per adapter of the port it uses.

The DynamoDB tables and the S3 bucket are created under moto from ``dynamo_layout`` (the same layout
the CDK app deploys), and the adapters are wired by ``build_aws_ports`` from the same environment
variables a deployed function gets. Fake credentials only: no test can reach a real AWS account.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import boto3
import pytest
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber

from earshot.adapters.aws import build_aws_ports
from earshot.adapters.dynamo_layout import IDEMPOTENCY, STEP_MARKERS, TABLES, TASK_EVENTS, TASKS, TableSpec
from earshot.adapters.dynamo_tasks import DynamoIdempotencyStore, DynamoTaskStore
from earshot.adapters.file_blobs import FileBlobStore
from earshot.adapters.sqlite_store import SqliteStore
from earshot.adapters.sqlite_tasks import SqliteIdempotencyStore, SqliteTaskStore
from earshot.config import Settings
from earshot.ports import AccountStore, BlobStore, IdempotencyStore, StepMarkers, TaskStore

_REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A moto AWS and the settings a deployed function would read; the fixtures below create what they use."""
    for name, value in {
        "AWS_DEFAULT_REGION": _REGION,
        "AWS_REGION": _REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # DynamoDB serializes writes to an item and applies a transaction atomically; moto's in-memory
    # backend does neither across threads (a cancelled transaction restores a snapshot of the whole
    # table). Handling one request at a time gives the concurrency tests the real isolation while
    # the adapter's threads still interleave between requests.
    lock = threading.Lock()
    process_request = BotocoreStubber.process_request

    def one_request_at_a_time(self: BotocoreStubber, request: Any) -> Any:
        with lock:
            return process_request(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", one_request_at_a_time)
    monkeypatch.setenv("EARSHOT_RUNTIME", "aws")
    for spec in TABLES:
        monkeypatch.setenv(spec.env_var, f"earshot-test-{spec.logical}")
    monkeypatch.setenv("EARSHOT_BUCKET_NAME", "earshot-test-blobs")
    with mock_aws():
        yield Settings()


@pytest.fixture(params=["sqlite", "dynamodb"])
def account_store(request: pytest.FixtureRequest, tmp_path: Path) -> AccountStore:
    if request.param == "sqlite":
        return SqliteStore(tmp_path / "earshot.db")
    settings: Settings = request.getfixturevalue("aws")
    dynamodb = boto3.client("dynamodb", region_name=_REGION)
    for spec in TABLES:
        dynamodb.create_table(**spec.create_table_kwargs(os.environ[spec.env_var]))
    store, _ = build_aws_ports(settings)
    return store


@pytest.fixture(params=["files", "s3"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "files":
        return FileBlobStore(tmp_path / "blobs")
    settings: Settings = request.getfixturevalue("aws")
    assert settings.bucket_name is not None
    boto3.client("s3", region_name=_REGION).create_bucket(Bucket=settings.bucket_name)
    _, blobs = build_aws_ports(settings)
    return blobs


# -- tasks, step markers and idempotency (issue 5) ------------------------------------------------
class TaskStoreWithMarkers(TaskStore, StepMarkers, Protocol):
    """What ``task_store`` yields: both adapters implement the two ports together."""


class FakeClock:
    """Wall-clock time plus an offset the test moves forward, for expiries and leases."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _create_tables(*specs: TableSpec) -> None:
    dynamodb = boto3.client("dynamodb", region_name=_REGION)
    existing = set(dynamodb.list_tables()["TableNames"])
    for spec in specs:
        if os.environ[spec.env_var] not in existing:
            dynamodb.create_table(**spec.create_table_kwargs(os.environ[spec.env_var]))


@pytest.fixture(params=["sqlite", "dynamodb"])
def task_store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> TaskStoreWithMarkers:
    """A ``TaskStore`` that is also the ``StepMarkers`` (both adapters implement the two together)."""
    if request.param == "sqlite":
        return SqliteTaskStore(tmp_path / "earshot.db", clock=clock)
    request.getfixturevalue("aws")
    _create_tables(TASKS, TASK_EVENTS, STEP_MARKERS)
    return DynamoTaskStore(
        boto3.client("dynamodb", region_name=_REGION),
        tasks_table=os.environ[TASKS.env_var],
        events_table=os.environ[TASK_EVENTS.env_var],
        steps_table=os.environ[STEP_MARKERS.env_var],
        clock=clock,
    )


@pytest.fixture(params=["sqlite", "dynamodb"])
def idempotency_store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> IdempotencyStore:
    if request.param == "sqlite":
        return SqliteIdempotencyStore(tmp_path / "earshot.db", clock=clock)
    request.getfixturevalue("aws")
    _create_tables(IDEMPOTENCY)
    return DynamoIdempotencyStore(
        boto3.client("dynamodb", region_name=_REGION), table=os.environ[IDEMPOTENCY.env_var], clock=clock
    )
