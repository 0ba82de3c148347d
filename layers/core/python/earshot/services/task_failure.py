"""Ending a task that failed: the task first, then the money (the workflow's catch and crash recovery share it)."""

from __future__ import annotations

from typing import Any

from earshot import errors
from earshot.observability import logger
from earshot.ports import FINAL_TASK_STATUSES
from earshot.runtime import Runtime
from earshot.services.charged_run import refund_failed


def fail_task(runtime: Runtime, task_id: str, error: dict[str, Any], *, error_name: str) -> bool:
    """Fail a non-final task and give back what it took; False (nothing done) when it had completed.

    The task is failed first and refunded second: a task that completed meanwhile (a timed-out
    attempt that ran on) refuses the move and keeps its charge with its result. Both moves are
    idempotent, so running this again after a partial run finishes the job.
    """
    task = runtime.tasks.get_task(task_id)
    if task is not None and task.status not in FINAL_TASK_STATUSES:
        try:
            runtime.tasks.update_task(task_id, status="failed", error=error)
        except errors.TaskTransitionError:
            task = runtime.tasks.get_task(task_id)  # finished concurrently
        else:
            runtime.tasks.append_event(task_id, type="status", data={"status": "failed", "error": error})
            task = None
    if task is not None and task.status == "completed":
        return False  # only the webhook failed after the result was stored: nothing to refund
    refund = refund_failed(runtime, task_id, error_name)
    logger.info(
        "task failed",
        extra={
            "task_id": task_id,
            "code": error["code"],
            "refunded_micro_usd": refund.amount_micro_usd if refund else 0,
        },
    )
    return True
