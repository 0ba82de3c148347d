"""The async workflow in-process: duplicate S3 events, engine crashes, refunds, step idempotence."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from audio_fixtures import audio_bytes

from earshot.jobs.steps import registry
from earshot.local.events import LocalContext
from earshot.local.functions import load_handler
from earshot.ports import Principal, Task
from earshot.runtime import get_runtime
from earshot.schemas import UploadProcess, UploadRequestBody
from earshot.services.accounts import NewKey
from earshot.services.uploads import create_upload, upload_task_id
from earshot.workflow import LocalRunner

WAV = audio_bytes("wav", 1.2, sample_rate=16000)


def _principal(key: NewKey) -> Principal:
    return Principal(account_id=key.account.id, key_id=key.key.id)


def _wait(task_id: str, timeout: float = 30) -> Task:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = get_runtime().tasks.get_task(task_id)
        if task is not None and task.status in ("completed", "failed"):
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


def _s3_event(key: str, version: str = "v1") -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventName": "ObjectCreated:Post",
                "s3": {"bucket": {"name": "b"}, "object": {"key": key, "versionId": version}},
            }
        ]
    }


def _upload(key: NewKey, kind: str = "transcription") -> str:
    record, _ = create_upload(
        get_runtime(),
        _principal(key),
        UploadRequestBody(filename="a.wav", bytes=len(WAV), process=UploadProcess(kind=kind)),
    )
    get_runtime().blobs.put(record.key, WAV)
    return record.key


def test_duplicate_s3_events_start_one_task_and_charge_once(new_key: NewKey) -> None:
    object_key = _upload(new_key)
    ingest = load_handler("ingest")
    first = ingest(_s3_event(object_key), LocalContext("ingest"))
    second = ingest(_s3_event(object_key), LocalContext("ingest"))
    assert first["tasks"] == second["tasks"] and len(first["tasks"]) == 1
    task = _wait(first["tasks"][0])
    assert task.status == "completed"
    debits = [e for e in get_runtime().store.list_ledger(new_key.account.id) if e.kind == "debit"]
    assert len(debits) == 1 and debits[0].request_id == task.id
    assert not get_runtime().blobs.exists(object_key)  # processed audio is deleted unless retained


def test_one_upload_starts_one_task_even_if_the_file_is_posted_again(new_key: NewKey) -> None:
    record, _ = create_upload(
        get_runtime(),
        _principal(new_key),
        UploadRequestBody(filename="a.wav", bytes=len(WAV), process=UploadProcess(kind="transcription")),
    )
    get_runtime().blobs.put(record.key, WAV)
    ingest = load_handler("ingest")
    first = ingest(_s3_event(record.key, "v1"), LocalContext("ingest"))["tasks"]
    assert first == [upload_task_id(record)]  # the id the upload's answer announced
    _wait(first[0])
    get_runtime().blobs.put(record.key, WAV)
    second = ingest(_s3_event(record.key, "v2"), LocalContext("ingest"))["tasks"]
    assert second == first
    debits = [e for e in get_runtime().store.list_ledger(new_key.account.id) if e.kind == "debit"]
    assert len(debits) == 1


def test_objects_without_a_process_spec_or_outside_the_inbox_start_nothing(new_key: NewKey) -> None:
    record, _ = create_upload(get_runtime(), _principal(new_key), UploadRequestBody(filename="a.wav", bytes=10))
    ingest = load_handler("ingest")
    assert ingest(_s3_event(record.key), LocalContext("ingest")) == {"tasks": []}
    assert ingest(_s3_event("elsewhere/x.wav"), LocalContext("ingest")) == {"tasks": []}
    assert ingest({"Records": [{"eventName": "ObjectRemoved:Delete"}]}, LocalContext("ingest")) == {"tasks": []}


def _state(key: NewKey, task_id: str, blob: str) -> dict[str, Any]:
    """The workflow input: a reference to the task, nothing the caller sent."""
    return {"task_id": task_id}


def _task(key: NewKey, *, blob: str | None = None, delete_after: bool = True) -> Task:
    """A pending transcription task whose audio is stored under ``blob`` (its input key by default)."""
    from earshot.blob_layout import task_input_key
    from earshot.ports import new_task

    task = new_task(kind="transcription", account_id=key.account.id, model="whisper-base", request={})
    key_name = blob or task_input_key(task.id)
    task = task.model_copy(
        update={
            "request": {
                "options": {"model": "whisper-base", "response_format": "json"},
                "filename": "a.wav",
                "source": {"blob_key": key_name, "delete_after": delete_after},
            }
        }
    )
    get_runtime().tasks.create_task(task)
    get_runtime().blobs.put(key_name, WAV)
    return task


def test_an_engine_crash_mid_task_fails_it_and_refunds_in_full(
    new_key: NewKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    from earshot.engines.whisper_engine import WhisperEngine

    def crash(self: Any, audio: Path, options: Any) -> Any:
        raise RuntimeError("segfault-ish")

    monkeypatch.setattr(WhisperEngine, "transcribe", crash)
    task = _task(new_key)
    result = LocalRunner(registry(get_runtime()), sleep=lambda _s: None).run(
        _state(new_key, task.id, f"tasks/{task.id}/input")
    )
    assert not result.succeeded
    failed = get_runtime().tasks.get_task(task.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None and failed.error["code"] == "provider_error"
    ledger = get_runtime().store.list_ledger(new_key.account.id)
    assert [e.kind for e in ledger] == ["refund", "debit", "topup"]
    account = get_runtime().store.get_account(new_key.account.id)
    assert account is not None and account.balance_micro_usd == 1_000_000


def test_insufficient_balance_fails_the_task_unpaid(data_dir: Path) -> None:
    from earshot.services.accounts import create_key

    poor = create_key(get_runtime().store, name="poor", balance_micro_usd=10)
    task = _task(poor)
    result = LocalRunner(registry(get_runtime()), sleep=lambda _s: None).run(
        _state(poor, task.id, f"tasks/{task.id}/input")
    )
    assert not result.succeeded
    failed = get_runtime().tasks.get_task(task.id)
    assert failed is not None and failed.error is not None and failed.error["code"] == "billing_error"
    assert [e.kind for e in get_runtime().store.list_ledger(poor.account.id)] == ["topup"]


def test_re_running_a_finished_workflow_charges_nothing_more(new_key: NewKey) -> None:
    task = _task(new_key, blob="tasks/keep/input", delete_after=False)
    state = _state(new_key, task.id, "tasks/keep/input")
    runner = LocalRunner(registry(get_runtime()), sleep=lambda _s: None)
    assert runner.run(state).succeeded
    assert runner.run(state).succeeded  # a re-driven execution replays every recorded step
    debits = [e for e in get_runtime().store.list_ledger(new_key.account.id) if e.kind == "debit"]
    assert len(debits) == 1
