"""Every task ends: a failure at any step fails the task with its error code and gives back what was taken.

Each case runs on both store backends (SQLite + files, DynamoDB + S3 under moto), through ``submit_task``
and the workflow's own steps and retries.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audio_fixtures import audio_bytes
from fakes.upstreams import FakeOpenAI, error

from earshot.jobs.steps import registry
from earshot.jobs.submit import submit_task
from earshot.ports import Principal, Task
from earshot.runtime import Runtime, reset_runtime
from earshot.services.accounts import create_key
from earshot.services.charged_run import AudioPayload
from earshot.workflow import LocalRunner

WAV = audio_bytes("wav", 1.2, sample_rate=16000)
START = 1_000_000
# Deployed, upstream keys are read from SSM only (never the function's environment).
DEPLOYED_KEY = "ssm:/earshot/{stage}/fake-openai-key"


class CapturingStarter:
    """A job starter that keeps the workflow input, so the test runs the workflow itself."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}

    def start(self, task_id: str, state: dict[str, Any]) -> None:
        self.states[task_id] = state

    def wait_idle(self) -> None:
        """Nothing runs in the background."""


@pytest.fixture
def openai(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        catalog = data_dir.parent / "catalog.toml"
        catalog.write_text(
            upstream.catalog_entry(alias=None, deployed_credential=DEPLOYED_KEY)
            + """
[[models]]
sku = "whisper-base"
kind = "transcription"
provider = "embedded:whisper"
upstream_model = "whisper-base"
price_micro_usd_per_minute = 100
"""
        )
        monkeypatch.setenv("EARSHOT_CATALOG", str(catalog))
        monkeypatch.setenv("FAKE_OPENAI_KEY", upstream.api_key)
        monkeypatch.setenv("EARSHOT_ALLOW_LOOPBACK_URLS", "true")
        reset_runtime()
        yield upstream


def _run(runtime: Runtime, *, model: str = "whisper-base", **audio: Any) -> tuple[Task, float]:
    key = create_key(runtime.store, name="t", balance_micro_usd=START)
    starter = CapturingStarter()
    runtime._extras["jobs"] = starter
    task = submit_task(
        runtime,
        Principal(account_id=key.account.id, key_id=key.key.id),
        kind="transcription",
        model=model,
        options={"model": model, "response_format": "json"},
        **audio,
    )
    started = time.monotonic()
    LocalRunner(registry(runtime), sleep=lambda _s: None).run(starter.states[task.id])
    elapsed = time.monotonic() - started
    final = runtime.tasks.get_task(task.id)
    assert final is not None
    account = runtime.store.get_account(key.account.id)
    assert account is not None and account.balance_micro_usd == START  # exactly what was taken, given back
    return final, elapsed


def test_an_unfetchable_url_fails_the_pending_task_unpaid(openai: FakeOpenAI, backend: Runtime) -> None:
    task, elapsed = _run(backend, audio_url="http://127.0.0.1:1/gone.wav")
    assert (task.status, task.error and task.error["code"]) == ("failed", "invalid_request")
    assert elapsed < 10


def test_a_corrupt_file_fails_the_task_unpaid(openai: FakeOpenAI, backend: Runtime) -> None:
    task, _ = _run(backend, audio=AudioPayload(b"RIFF not really a wave file" * 40, "a.wav"))
    assert (task.status, task.error and task.error["code"]) == ("failed", "invalid_audio")


def test_an_upstream_500_fails_the_task_and_refunds_it(openai: FakeOpenAI, backend: Runtime) -> None:
    if backend.settings.runtime == "aws":
        import boto3

        name = DEPLOYED_KEY.removeprefix("ssm:").replace("{stage}", backend.settings.stage)
        boto3.client("ssm").put_parameter(Name=name, Value=openai.api_key, Type="SecureString", Overwrite=True)
    openai.fail_next(*[error(500)] * 5)
    task, elapsed = _run(backend, model="whisper-fake", audio=AudioPayload(WAV, "a.wav"))
    assert (task.status, task.error and task.error["code"]) == ("failed", "provider_error")
    assert elapsed < 20


def test_an_engine_crash_fails_the_task_and_refunds_it(
    openai: FakeOpenAI, backend: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from earshot.engines.whisper_engine import WhisperEngine

    def crash(self: Any, audio: Path, options: Any) -> Any:
        raise RuntimeError("segfault-ish")

    monkeypatch.setattr(WhisperEngine, "transcribe", crash)
    task, _ = _run(backend, audio=AudioPayload(WAV, "a.wav"))
    assert (task.status, task.error and task.error["code"]) == ("failed", "provider_error")


def test_a_failure_storing_the_result_refunds_the_task(
    openai: FakeOpenAI, backend: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from earshot.jobs import steps

    def broken_store(runtime: Runtime, state: dict[str, Any]) -> dict[str, Any]:
        raise OSError("disk full")

    monkeypatch.setitem(steps.STEPS, "store_result", broken_store)
    task, _ = _run(backend, audio=AudioPayload(WAV, "a.wav"))
    assert (task.status, task.error and task.error["code"]) == ("failed", "internal_error")


def test_a_task_waiting_to_retry_does_not_hold_a_worker() -> None:
    """One worker; a task whose step keeps failing backs off (seconds) while the next task runs at once."""
    from earshot.adapters.job_starters import LocalJobStarter
    from earshot.errors import RateLimitedError
    from earshot.workflow import WORKFLOW

    finished: dict[str, float] = {}

    def steps(_runtime: Any) -> dict[str, Any]:
        def step(name: str) -> Any:
            def run(state: dict[str, Any]) -> dict[str, Any]:
                if state["task_id"] == "bad" and name == "reserve":
                    raise RateLimitedError("contended")  # retried with backoff, up to ~20 s per wait
                if name in ("settle", "refund_and_fail"):  # the last step every task runs, or its catch
                    finished[state["task_id"]] = time.monotonic()
                return state

            return run

        return {s.name: step(s.name) for s in WORKFLOW.all_steps}

    starter = LocalJobStarter(None, workers=1, steps=steps)
    started = time.monotonic()
    starter.start("bad", {"task_id": "bad"})
    time.sleep(0.3)  # the bad task is in its first backoff
    starter.start("good", {"task_id": "good"})
    deadline = time.monotonic() + 5
    while "good" not in finished and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "good" in finished and finished["good"] - started < 3
    assert "bad" not in finished  # still backing off: it never held the only worker while waiting


def test_sync_understanding_answers_the_tasks_error_not_202(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from earshot.local.server import LocalGateway

    monkeypatch.setenv("EARSHOT_ALLOW_LOOPBACK_URLS", "true")
    reset_runtime()
    from earshot.runtime import get_runtime

    key = create_key(get_runtime().store, name="t", balance_micro_usd=START)
    body = {"model": "acoustic-understand", "audio": "http://127.0.0.1:1/gone.wav", "sync": True}
    started = time.monotonic()
    response = LocalGateway(max_request_bytes=1 << 20).handle(
        method="POST",
        path="/v1/audio/understanding",
        raw_query="",
        headers={"Authorization": f"Bearer {key.secret}", "Content-Type": "application/json"},
        body=json.dumps(body).encode(),
    )
    assert time.monotonic() - started < 10
    assert response.status == 400, response.body
    assert json.loads(response.body)["error"]["code"] == "invalid_request"
