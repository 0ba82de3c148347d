"""The ``TaskStore`` and ``StepMarkers`` contract: what the workflow and the task routes can rely on,
whichever adapter (SQLite, DynamoDB) holds the tasks."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import pytest

from earshot.errors import IdempotencyConflictError, NotFoundError, TaskTransitionError
from earshot.ports import (
    TASK_ID_PATTERN,
    TASK_TTL_SEC,
    StepMarkers,
    Task,
    TaskEvent,
    TaskStore,
    new_task,
)


class TaskStoreWithMarkers(TaskStore, StepMarkers, Protocol):
    """The ``task_store`` fixture: each adapter implements both ports."""


class FakeClock(Protocol):
    """The ``clock`` fixture: wall-clock time the test can move forward."""

    def __call__(self) -> float: ...

    def advance(self, seconds: float) -> None: ...


def _task(store: TaskStoreWithMarkers, *, kind: str = "llm", account_id: str = "acct_1", **extra: Any) -> Task:
    return store.create_task(
        new_task(
            kind=kind,
            account_id=account_id,
            model="gemini-2.5-pro",
            request={"audio": {"file_id": "file_1"}, "prompt": "Who is speaking?", "temperature": 0.2},
            **extra,
        )
    )


def _concurrently(count: int, attempt: Any) -> list[Any]:
    start = threading.Barrier(count)

    def run(n: int) -> Any:
        start.wait()
        try:
            return attempt(n)
        except Exception as exc:  # the outcome under test
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


# -- creating and reading -----------------------------------------------------------------------
def test_a_new_task_is_pending_and_reads_back_unchanged(task_store: TaskStoreWithMarkers) -> None:
    task = _task(task_store, callback_url="https://example.com/hook", stream=True)

    assert re.fullmatch(TASK_ID_PATTERN, task.id) and task.id.startswith(f"task-llm-{task.created_at}-")
    assert (task.object, task.kind, task.status, task.progress) == ("llm.generation.task", "llm", "pending", 0)
    assert task.results is None and task.error is None and task.result_blob_key is None
    assert task.expires_at == task.created_at + TASK_TTL_SEC
    assert task_store.get_task(task.id) == task


def test_an_unknown_task_is_none(task_store: TaskStoreWithMarkers) -> None:
    assert task_store.get_task("task-llm-1776874565-yq3szvcu") is None


def test_a_task_id_cannot_be_created_twice(task_store: TaskStoreWithMarkers) -> None:
    task = _task(task_store)

    with pytest.raises(IdempotencyConflictError):
        task_store.create_task(task.model_copy(update={"account_id": "acct_other"}))

    assert task_store.get_task(task.id) == task


def test_ids_name_their_kind_and_differ(task_store: TaskStoreWithMarkers) -> None:
    ids = {_task(task_store, kind="transcription").id for _ in range(20)}

    assert len(ids) == 20
    assert all(re.fullmatch(r"task-transcription-\d+-[a-z0-9]{8}", task_id) for task_id in ids)


# -- status moves -------------------------------------------------------------------------------
def test_a_task_runs_to_completion_with_its_results(task_store: TaskStoreWithMarkers, clock: FakeClock) -> None:
    task = _task(task_store)
    clock.advance(5)

    processing = task_store.update_task(task.id, status="processing", progress=10)
    halfway = task_store.update_task(task.id, progress=50)
    results: list[Any] = [{"object": "chat.completion", "choices": [{"message": {"content": "hi"}}], "score": 0.125}]
    completed = task_store.update_task(task.id, status="completed", results=results)

    assert (processing.status, processing.progress) == ("processing", 10)
    assert processing.updated_at >= task.created_at + 5
    assert (halfway.status, halfway.progress) == ("processing", 50)
    assert (completed.status, completed.progress, completed.results) == ("completed", 100, results)
    assert task_store.get_task(task.id) == completed
    assert completed.request == task.request and completed.created_at == task.created_at


def test_a_failed_task_carries_its_error(task_store: TaskStoreWithMarkers) -> None:
    task = _task(task_store)
    task_store.update_task(task.id, status="processing")
    error = {"message": "the upstream failed", "type": "api_error", "code": "provider_error"}

    failed = task_store.update_task(task.id, status="failed", error=error)

    assert (failed.status, failed.error, failed.results) == ("failed", error, None)


def test_a_large_result_can_point_at_the_blob_store(task_store: TaskStoreWithMarkers) -> None:
    task = _task(task_store)
    task_store.update_task(task.id, status="processing")

    done = task_store.update_task(task.id, status="completed", result_blob_key=f"results/{task.id}.json")

    assert done.result_blob_key == f"results/{task.id}.json" and done.results is None


def test_setting_processing_again_is_allowed_for_a_retried_step(task_store: TaskStoreWithMarkers) -> None:
    task = _task(task_store)
    task_store.update_task(task.id, status="processing", progress=30)

    again = task_store.update_task(task.id, status="processing")

    assert (again.status, again.progress) == ("processing", 30)


def test_a_pending_task_cannot_complete_without_processing(task_store: TaskStoreWithMarkers) -> None:
    task = _task(task_store)

    with pytest.raises(TaskTransitionError):
        task_store.update_task(task.id, status="completed")

    assert task_store.get_task(task.id) == task


def test_a_pending_task_can_fail_before_it_starts(task_store: TaskStoreWithMarkers) -> None:
    task = _task(task_store)

    failed = task_store.update_task(task.id, status="failed", error={"code": "invalid_request", "message": "x"})

    assert (failed.status, failed.error) == ("failed", {"code": "invalid_request", "message": "x"})
    assert task_store.get_task(task.id) == failed


@pytest.mark.parametrize("final", ["completed", "failed"])
@pytest.mark.parametrize("target", [None, "pending", "processing", "completed", "failed"])
def test_a_final_task_never_changes_again(task_store: TaskStoreWithMarkers, final: Any, target: Any) -> None:
    task = _task(task_store)
    task_store.update_task(task.id, status="processing")
    done = task_store.update_task(task.id, status=final, results=[{"n": 1}] if final == "completed" else None)

    with pytest.raises(TaskTransitionError):
        task_store.update_task(task.id, status=target, progress=7, error={"message": "late"})

    assert task_store.get_task(task.id) == done


def test_processing_cannot_go_back_to_pending(task_store: TaskStoreWithMarkers) -> None:
    task = _task(task_store)
    task_store.update_task(task.id, status="processing")

    with pytest.raises(TaskTransitionError):
        task_store.update_task(task.id, status="pending")


def test_updating_an_unknown_task_is_not_found(task_store: TaskStoreWithMarkers) -> None:
    with pytest.raises(NotFoundError):
        task_store.update_task("task-llm-1776874565-yq3szvcu", status="processing")


def test_progress_stays_within_0_and_100(task_store: TaskStoreWithMarkers) -> None:
    task = _task(task_store)

    with pytest.raises(ValueError):
        task_store.update_task(task.id, progress=101)


def test_racing_completions_let_exactly_one_final_state_win(task_store: TaskStoreWithMarkers) -> None:
    task = _task(task_store)
    task_store.update_task(task.id, status="processing")

    def finish(n: int) -> Task:
        if n % 2:
            return task_store.update_task(task.id, status="completed", results=[{"winner": n}])
        return task_store.update_task(task.id, status="failed", error={"winner": n})

    outcomes = _concurrently(10, finish)

    winners = [outcome for outcome in outcomes if isinstance(outcome, Task)]
    assert len(winners) == 1
    assert all(isinstance(outcome, TaskTransitionError) for outcome in outcomes if not isinstance(outcome, Task))
    assert task_store.get_task(task.id) == winners[0]


# -- events -------------------------------------------------------------------------------------
def test_events_are_numbered_from_1_and_resume_after_a_seq(task_store: TaskStoreWithMarkers) -> None:
    task = _task(task_store)
    other = _task(task_store)

    appended = [task_store.append_event(task.id, type="progress", data={"progress": p}) for p in (10, 50, 90)]
    task_store.append_event(other.id, type="status", data={"status": "processing"})
    final = task_store.append_event(task.id, type="status", data={"status": "completed", "final": True})

    assert [event.seq for event in appended] == [1, 2, 3] and final.seq == 4
    assert task_store.list_events(task.id) == [*appended, final]
    assert task_store.list_events(task.id, after_seq=2) == [appended[2], final]
    assert task_store.list_events(task.id, after_seq=1, limit=2) == appended[1:3]
    assert task_store.list_events(task.id, after_seq=4) == []
    assert [event.seq for event in task_store.list_events(other.id)] == [1]


def test_an_event_for_an_unknown_task_is_not_found(task_store: TaskStoreWithMarkers) -> None:
    with pytest.raises(NotFoundError):
        task_store.append_event("task-llm-1776874565-yq3szvcu", type="progress", data={})
    assert task_store.list_events("task-llm-1776874565-yq3szvcu") == []


def test_concurrent_events_get_distinct_gapless_seqs(task_store: TaskStoreWithMarkers) -> None:
    task = _task(task_store)

    outcomes = _concurrently(20, lambda n: task_store.append_event(task.id, type="progress", data={"n": n}))

    assert all(isinstance(outcome, TaskEvent) for outcome in outcomes)
    assert sorted(outcome.seq for outcome in outcomes) == list(range(1, 21))
    listed = task_store.list_events(task.id)
    assert [event.seq for event in listed] == list(range(1, 21))
    assert sorted(event.data["n"] for event in listed) == list(range(20))


# -- deleting and expiry ------------------------------------------------------------------------
def test_deleting_a_task_removes_its_events_and_step_markers(task_store: TaskStoreWithMarkers) -> None:
    task = _task(task_store)
    kept = _task(task_store)
    for store_task in (task, kept):
        task_store.append_event(store_task.id, type="progress", data={})
        task_store.claim_step(store_task.id, "meter")
        task_store.record_step_output(store_task.id, "meter", {"duration_ms": 1})

    task_store.delete_task(task.id)
    task_store.delete_task(task.id)  # deleting a missing task is not an error

    assert task_store.get_task(task.id) is None
    assert task_store.list_events(task.id) == []
    assert task_store.get_step_output(task.id, "meter") is None
    assert task_store.claim_step(task.id, "meter") is True
    assert task_store.get_task(kept.id) == kept
    assert len(task_store.list_events(kept.id)) == 1
    assert task_store.get_step_output(kept.id, "meter") == {"duration_ms": 1}


def test_an_expired_task_is_gone_before_the_ttl_removes_it(task_store: TaskStoreWithMarkers, clock: FakeClock) -> None:
    task = _task(task_store)
    task_store.append_event(task.id, type="progress", data={})

    clock.advance(TASK_TTL_SEC + 1)

    assert task_store.get_task(task.id) is None
    assert task_store.list_events(task.id) == []
    with pytest.raises(NotFoundError):
        task_store.update_task(task.id, status="processing")
    with pytest.raises(NotFoundError):
        task_store.append_event(task.id, type="progress", data={})


# -- step markers -------------------------------------------------------------------------------
def test_the_first_claim_of_a_step_is_the_only_first_one(task_store: TaskStoreWithMarkers) -> None:
    assert task_store.claim_step("task-llm-1-abcdefgh", "run_engine") is True
    assert task_store.claim_step("task-llm-1-abcdefgh", "run_engine") is False
    assert task_store.claim_step("task-llm-1-abcdefgh", "settle") is True
    assert task_store.claim_step("task-llm-2-abcdefgh", "run_engine") is True


def test_the_first_recorded_output_wins(task_store: TaskStoreWithMarkers) -> None:
    assert task_store.get_step_output("task-llm-1-abcdefgh", "meter") is None
    task_store.claim_step("task-llm-1-abcdefgh", "meter")

    first = task_store.record_step_output("task-llm-1-abcdefgh", "meter", {"duration_ms": 61_000, "ratio": 0.5})
    second = task_store.record_step_output("task-llm-1-abcdefgh", "meter", {"duration_ms": 1})

    assert first == second == {"duration_ms": 61_000, "ratio": 0.5}
    assert task_store.get_step_output("task-llm-1-abcdefgh", "meter") == first
    assert task_store.claim_step("task-llm-1-abcdefgh", "meter") is False


def test_an_output_can_be_recorded_without_a_claim(task_store: TaskStoreWithMarkers) -> None:
    assert task_store.record_step_output("task-llm-1-abcdefgh", "store_result", {"ok": True}) == {"ok": True}
    assert task_store.claim_step("task-llm-1-abcdefgh", "store_result") is False


def test_concurrent_recordings_all_see_one_output(task_store: TaskStoreWithMarkers) -> None:
    outcomes = _concurrently(
        20, lambda n: task_store.record_step_output("task-llm-1-abcdefgh", "run_engine", {"attempt": n})
    )

    assert len({outcome["attempt"] for outcome in outcomes}) == 1
    assert task_store.get_step_output("task-llm-1-abcdefgh", "run_engine") == outcomes[0]


def test_concurrent_claims_have_one_first(task_store: TaskStoreWithMarkers) -> None:
    outcomes = _concurrently(20, lambda n: task_store.claim_step("task-llm-1-abcdefgh", "reserve"))

    assert sorted(outcomes) == [False] * 19 + [True]


def test_step_markers_expire(task_store: TaskStoreWithMarkers, clock: FakeClock) -> None:
    task_store.claim_step("task-llm-1-abcdefgh", "meter")
    task_store.record_step_output("task-llm-1-abcdefgh", "meter", {"duration_ms": 5})

    clock.advance(TASK_TTL_SEC + 1)

    assert task_store.get_step_output("task-llm-1-abcdefgh", "meter") is None
    assert task_store.claim_step("task-llm-1-abcdefgh", "meter") is True
    assert task_store.record_step_output("task-llm-1-abcdefgh", "meter", {"duration_ms": 6}) == {"duration_ms": 6}


def test_unfinished_tasks_are_listed_for_crash_recovery_and_final_ones_are_not(
    task_store: TaskStoreWithMarkers, clock: Any
) -> None:
    waiting = _task(task_store)
    running = _task(task_store)
    task_store.update_task(running.id, status="processing")
    done = _task(task_store)
    task_store.update_task(done.id, status="processing")
    task_store.update_task(done.id, status="completed", results=[{"n": 1}])
    failed = _task(task_store)
    task_store.update_task(failed.id, status="failed", error={"code": "x", "message": "y"})

    now = int(clock())
    listed = task_store.list_unfinished(updated_before=now + 5)

    assert sorted(task.id for task in listed) == sorted([waiting.id, running.id])
    assert task_store.list_unfinished(updated_before=now - 60) == []
