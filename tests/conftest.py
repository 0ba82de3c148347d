"""Shared fixtures: an isolated data dir per test, keys, and a real local server for e2e tests."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # audio_fixtures, speech_fixtures

from local_server import LocalServer, start_server

from earshot.config import Settings
from earshot.runtime import Runtime, get_runtime, reset_runtime
from earshot.services.accounts import NewKey, create_key

REPO = Path(__file__).resolve().parents[1]
AWS_REGION = "us-east-1"
# What makes the shipped catalog's upstream models live, or points them elsewhere (catalogs/default.toml).
PROVIDER_ENVIRONMENT = (
    "GROQ_API_KEY",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "EARSHOT_GROQ_BASE_URL",
    "EARSHOT_OPENAI_BASE_URL",
    "EARSHOT_GEMINI_BASE_URL",
)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh local-mode runtime whose SQLite store and blobs live in a temporary directory."""
    directory = tmp_path / "data"
    monkeypatch.setenv("EARSHOT_DATA_DIR", str(directory))
    monkeypatch.setenv("EARSHOT_RUNTIME", "local")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("EARSHOT_REQUEST_TIMEOUT_SEC", "240")  # speed is measured in bench/, not by tests
    for name in PROVIDER_ENVIRONMENT:  # the shipped catalog's upstream models are not live unless a test says so
        monkeypatch.delenv(name, raising=False)
    reset_runtime()
    yield directory
    if get_runtime.cache_info().currsize:  # let workflows this test started finish before the next test
        jobs = get_runtime()._extras.get("jobs")
        if jobs is not None:
            jobs.wait_idle()
    reset_runtime()


@pytest.fixture
def new_key(data_dir: Path) -> NewKey:
    return create_key(get_runtime().store, name="test", balance_micro_usd=1_000_000)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One real `earshot serve` for the e2e suite (keys are created per test)."""
    running = start_server(tmp_path_factory.mktemp("server-data"))
    yield running
    running.process.terminate()
    try:
        running.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        running.process.kill()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A moto AWS and the settings a deployed function would read; the fixtures that use it create what they need."""
    from moto import mock_aws
    from moto.core.botocore_stubber import BotocoreStubber

    from earshot.adapters.dynamo_layout import TABLES

    for name, value in {
        "AWS_DEFAULT_REGION": AWS_REGION,
        "AWS_REGION": AWS_REGION,
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
def backend(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Runtime]:
    """The whole runtime on each store backend: SQLite + files, or DynamoDB + S3 under moto.

    Tests drive workflows themselves (``LocalRunner``) on either; the aws runtime's job starter is not used.
    """
    if request.param == "sqlite":
        yield get_runtime()
        return
    import os

    import boto3

    from earshot.adapters.dynamo_layout import TABLES

    settings: Settings = request.getfixturevalue("aws")
    dynamodb = boto3.client("dynamodb", region_name=AWS_REGION)
    for spec in TABLES:
        dynamodb.create_table(**spec.create_table_kwargs(os.environ[spec.env_var]))
    assert settings.bucket_name is not None
    boto3.client("s3", region_name=AWS_REGION).create_bucket(Bucket=settings.bucket_name)
    reset_runtime()
    yield get_runtime()
    reset_runtime()
