"""Fixtures for the contract suite: every test here runs once per adapter of the port it uses.

The DynamoDB tables and the S3 bucket are created under moto from ``dynamo_layout`` (the same layout
the CDK app deploys), and the adapters are wired by ``build_aws_ports`` from the same environment
variables a deployed function gets. Fake credentials only: no test can reach a real AWS account.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Protocol

import boto3
import pytest

from earshot.adapters.aws import build_aws_ports
from earshot.adapters.dynamo_layout import IDEMPOTENCY, STEP_MARKERS, TABLES, TASK_EVENTS, TASKS, TableSpec
from earshot.adapters.dynamo_tasks import DynamoIdempotencyStore, DynamoTaskStore
from earshot.adapters.file_blobs import FileBlobStore
from earshot.adapters.sqlite_store import SqliteStore
from earshot.adapters.sqlite_tasks import SqliteIdempotencyStore, SqliteTaskStore
from earshot.config import Settings
from earshot.ports import AccountStore, BlobStore, IdempotencyStore, StepMarkers, TaskStore

_REGION = "us-east-1"  # the shared ``aws`` fixture (tests/conftest.py) runs moto in this region


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
