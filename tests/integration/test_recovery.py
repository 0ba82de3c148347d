"""Crash recovery on both store backends: holds whose work cannot be delivered go back, every task ends."""

from __future__ import annotations

import time

from earshot.ports import Charge, Principal, new_task
from earshot.runtime import Runtime
from earshot.services.accounts import create_key
from earshot.services.recovery import recover

START = 1_000_000


def _charge(account_id: str, request_id: str, amount: int = 900) -> Charge:
    return Charge(
        request_id=request_id,
        account_id=account_id,
        amount_micro_usd=amount,
        model="m",
        duration_ms=1,
        billable_minutes=1,
    )


def test_recovery_refunds_dead_requests_settles_completed_tasks_and_fails_unfinished_ones(backend: Runtime) -> None:
    key = create_key(backend.store, name="t", balance_micro_usd=START)
    principal = Principal(account_id=key.account.id, key_id=key.key.id)
    done, running, waiting = (
        new_task(kind="transcription", account_id=principal.account_id, model="m", request={}) for _ in range(3)
    )
    for task in (done, running, waiting):
        backend.tasks.create_task(task)
    backend.tasks.update_task(done.id, status="processing")
    backend.tasks.update_task(done.id, status="completed", results=[{"text": "hi"}])
    backend.tasks.update_task(running.id, status="processing")
    backend.store.debit(_charge(principal.account_id, "req-sync-dead"))
    backend.store.debit(_charge(principal.account_id, "req-sync-delivered"))
    backend.store.capture("req-sync-delivered")
    backend.store.debit(_charge(principal.account_id, done.id))
    backend.store.debit(_charge(principal.account_id, running.id))

    recovered = recover(backend, request_older_than_sec=0, task_older_than_sec=0, now=int(time.time()) + 1)

    assert sorted(recovered.refunded) == ["req-sync-dead"]
    assert recovered.captured == [done.id]
    assert sorted(recovered.failed_tasks) == sorted([running.id, waiting.id])
    assert backend.store.open_holds(created_before=int(time.time()) + 10) == []
    for task in (running, waiting):
        ended = backend.tasks.get_task(task.id)
        assert ended is not None and ended.status == "failed"
        assert ended.error is not None and ended.error["code"] == "internal_error"
    account = backend.store.get_account(principal.account_id)
    assert account is not None and account.balance_micro_usd == START - 2 * 900  # the delivered sync + done task
    assert (
        recover(backend, request_older_than_sec=0, task_older_than_sec=0, now=int(time.time()) + 1).failed_tasks == []
    )


def test_live_work_is_left_alone(backend: Runtime) -> None:
    key = create_key(backend.store, name="t", balance_micro_usd=START)
    task = new_task(kind="transcription", account_id=key.account.id, model="m", request={})
    backend.tasks.create_task(task)
    backend.store.debit(_charge(key.account.id, "req-in-flight"))
    backend.store.debit(_charge(key.account.id, task.id))

    recovered = recover(backend, request_older_than_sec=600, task_older_than_sec=4 * 3600)

    assert (recovered.refunded, recovered.captured, recovered.failed_tasks) == ([], [], [])
    live = backend.tasks.get_task(task.id)
    assert live is not None and live.status == "pending"


def test_the_cloud_sweeper_releases_only_what_is_past_every_time_limit(backend: Runtime) -> None:
    from earshot.services.recovery import LAMBDA_MAX_RUN_SEC, SWEEP_MARGIN_SEC, sweep

    key = create_key(backend.store, name="t", balance_micro_usd=START)
    entry = backend.store.debit(_charge(key.account.id, "req-timed-out"))

    assert sweep(backend, now=entry.created_at + LAMBDA_MAX_RUN_SEC).refunded == []
    swept = sweep(backend, now=entry.created_at + LAMBDA_MAX_RUN_SEC + SWEEP_MARGIN_SEC + 1)
    assert swept.refunded == ["req-timed-out"]
    account = backend.store.get_account(key.account.id)
    assert account is not None and account.balance_micro_usd == START
