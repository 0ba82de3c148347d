"""Fixtures for the contract suite: every test here runs once per adapter of the port it uses.

The DynamoDB tables and the S3 bucket are created under moto from ``dynamo_layout`` (the same layout
the CDK app deploys), and the adapters are wired by ``build_aws_ports`` from the same environment
variables a deployed function gets. Fake credentials only: no test can reach a real AWS account.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from earshot.adapters.aws import build_aws_ports
from earshot.adapters.dynamo_layout import TABLES
from earshot.adapters.file_blobs import FileBlobStore
from earshot.adapters.sqlite_store import SqliteStore
from earshot.config import Settings
from earshot.ports import AccountStore, BlobStore
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber

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
