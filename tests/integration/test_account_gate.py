"""Account state governs all work: a disabled, revoked or exhausted account starts no queued or uploaded work."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gateway_requests import WAV, balance, call

from earshot.adapters.job_starters import LocalJobStarter
from earshot.runtime import get_runtime
from earshot.services.accounts import NewKey, create_key

START = 1_000_000


@pytest.fixture
def account(data_dir: Path) -> NewKey:
    return create_key(get_runtime().store, name="t", balance_micro_usd=START)


def _disable(key: NewKey) -> None:
    get_runtime().store.set_audio_enabled(key.account.id, False)


def _revoke(key: NewKey) -> None:
    get_runtime().store.revoke_api_key(key.key.id)


def _exhaust(key: NewKey) -> None:
    store = get_runtime().store
    from earshot.ports import Charge

    store.debit(
        Charge(
            request_id="spend-all",
            account_id=key.account.id,
            amount_micro_usd=START,
            model="x",
            duration_ms=60_000,
            billable_minutes=1,
        )
    )


CHANGES: dict[str, Callable[[NewKey], None]] = {"disabled": _disable, "revoked": _revoke, "exhausted": _exhaust}
CODES = {"disabled": "not_enabled", "revoked": "auth_error", "exhausted": "billing_error"}


def _ledger(key: NewKey) -> list[str]:
    return [entry.kind for entry in get_runtime().store.list_ledger(key.account.id)]


def _tasks(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "earshot.db") as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_an_issued_upload_starts_nothing_once_the_account_changed(account: NewKey, data_dir: Path, change: str) -> None:
    from earshot.jobs.ingest import ingest_object
    from earshot.services.uploads import load_upload

    body = {"filename": "a.wav", "bytes": len(WAV), "process": {"kind": "transcription"}}
    response = call("POST", "/v1/uploads", account.secret, json.dumps(body).encode(), "application/json")
    assert response.status == 201, response.body
    file_id = json.loads(response.body)["id"]
    CHANGES[change](account)
    balance_before, ledger_before = balance(account), _ledger(account)
    runtime = get_runtime()
    record = load_upload(runtime, file_id)
    assert record is not None and record.key_id == account.key.id
    runtime.blobs.put(record.key, WAV)
    assert ingest_object(runtime, bucket="local", key=record.key, version="1") is None
    assert _tasks(data_dir) == 0
    assert (balance(account), _ledger(account)) == (balance_before, ledger_before)


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_queued_task_fails_uncharged_once_the_account_changed(
    account: NewKey, change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = get_runtime()
    jobs = runtime.jobs
    assert isinstance(jobs, LocalJobStarter)
    queued: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(jobs, "start", lambda task_id, state: queued.append((task_id, state)))
    form = b'--B\r\nContent-Disposition: form-data; name="async"\r\n\r\ntrue\r\n'
    form += b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n' + WAV + b"\r\n--B--\r\n"
    response = call("POST", "/v1/audio/transcriptions", account.secret, form, "multipart/form-data; boundary=B")
    assert response.status == 202, response.body
    assert len(queued) == 1
    CHANGES[change](account)
    balance_before, ledger_before = balance(account), _ledger(account)
    monkeypatch.undo()
    jobs.start(*queued[0])  # the workflow picks the task up now
    jobs.wait_idle()
    task = runtime.tasks.get_task(queued[0][0])
    assert task is not None and task.status == "failed"
    assert task.error is not None and task.error.get("code") == CODES[change], task.error
    assert (balance(account), _ledger(account)) == (balance_before, ledger_before)
