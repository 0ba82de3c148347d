"""The local server for tests: a real `earshot serve` subprocess (its URL, data dir and dev key) for end-to-end
tests, or the same server in a thread of the test process (``serve_in_thread``) for the HTTP-level ones."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


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
    # Speed is measured in bench/, not here: on a loaded shared machine Whisper may need longer than the gateway's
    # 29 s for a short clip, so the test server's sync deadline is generous unless a test sets its own.
    env = {"EARSHOT_REQUEST_TIMEOUT_SEC": "240", **os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING", **(extra_env or {})}
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


@contextmanager
def serve_in_thread(*, max_request_bytes: int, timeout_sec: float) -> Iterator[tuple[str, int]]:
    """``build_server`` on a free loopback port, serving from a daemon thread; (host, port) while it runs."""
    from earshot.local.server import build_server

    running = build_server("127.0.0.1", 0, max_request_bytes=max_request_bytes, timeout_sec=timeout_sec)
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", running.server_port
    finally:
        running.shutdown()
        running.server_close()
