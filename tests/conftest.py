"""Shared fixtures: an isolated data dir per test, keys, and a real local server for e2e tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # audio_fixtures, speech_fixtures

from local_server import LocalServer, start_server

from earshot.runtime import get_runtime, reset_runtime
from earshot.services.accounts import NewKey, create_key

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh local-mode runtime whose SQLite store and blobs live in a temporary directory."""
    directory = tmp_path / "data"
    monkeypatch.setenv("EARSHOT_DATA_DIR", str(directory))
    monkeypatch.setenv("EARSHOT_RUNTIME", "local")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
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
