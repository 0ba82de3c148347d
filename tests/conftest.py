"""Shared fixtures: an isolated data dir per test, keys, and a real local server for e2e tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # audio_fixtures, speech_fixtures

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
    reset_runtime()


@pytest.fixture
def new_key(data_dir: Path) -> NewKey:
    return create_key(get_runtime().store, name="test", balance_micro_usd=1_000_000)


@dataclass
class LocalServer:
    url: str
    data_dir: Path
    dev_key: str
    process: subprocess.Popen[str]

    def cli(self, *args: str) -> str:
        """Run ``earshot`` against this server's data dir; returns stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "earshot.cli", *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    def create_key_record(self, *, balance_usd: str = "1", name: str = "e2e") -> dict[str, object]:
        """``earshot keys create --json``: at least ``id`` and ``key``."""
        return json.loads(self.cli("keys", "create", "--name", name, "--balance-usd", balance_usd, "--json"))  # type: ignore[no-any-return]

    def create_key(self, *, balance_usd: str = "1", name: str = "e2e") -> str:
        return str(self.create_key_record(balance_usd=balance_usd, name=name)["key"])


def start_server(data_dir: Path, extra_env: dict[str, str] | None = None) -> LocalServer:
    env = {**os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING", **(extra_env or {})}
    env.pop("EARSHOT_DATA_DIR", None)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "earshot.cli", "serve", "--port", "0", "--data-dir", str(data_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO,
    )
    dev_key = url = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not url and process.poll() is None:
        text = log_path.read_text()
        if found := re.search(r"EARSHOT_API_KEY=(\S+)", text):
            dev_key = found.group(1)
        if found := re.search(r"listening on (http://\S+)", text):
            url = found.group(1)
        time.sleep(0.05)
    if not url:
        process.kill()
        raise RuntimeError(f"the local server did not start:\n{log_path.read_text()}")
    for _ in range(100):
        try:
            httpx.get(f"{url}/openapi.json", timeout=2)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return LocalServer(url=url, data_dir=data_dir, dev_key=dev_key, process=process)


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
