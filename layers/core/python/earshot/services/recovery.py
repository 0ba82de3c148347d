"""Crash recovery: money held for work that can no longer be delivered goes back, and every task ends.

A debit is a hold until its work is delivered (``charged_run``): a sync response rendered, a task
completed. A process that dies (``kill -9``, a Lambda timeout or out-of-memory kill) leaves holds
open and tasks unfinished. ``recover`` closes them:

- a hold of a sync request is refunded: its response can no longer reach the caller;
- a hold of a task follows the task: completed → captured, failed → refunded, unfinished → the task
  fails (``interrupted``) and is refunded;
- an unfinished task with no hold (it died before ``reserve``) fails, nothing to refund.

Locally the server calls it at start-up with ``older_than_sec=0`` (nothing from before this process
can still be running). In the cloud a scheduled sweeper calls it with cutoffs past the longest a
request or a workflow may still be running, so live work is never touched.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from aws_lambda_powertools.metrics import MetricUnit

from earshot.observability import logger, metrics
from earshot.ports import FINAL_TASK_STATUSES, TASK_ID_PATTERN
from earshot.runtime import Runtime
from earshot.services.task_failure import fail_task
from earshot.workflow import WORKFLOW

INTERRUPTED = {
    "code": "internal_error",
    "type": "api_error",
    "message": "the task was interrupted before it finished; what it was charged has been refunded",
}
_BATCH = 100
# The cloud sweeper's cutoffs: no function runs longer than Lambda's 15 minutes, and no workflow longer than
# its TimeoutSeconds; five minutes more on each and nothing that old can still be running.
LAMBDA_MAX_RUN_SEC = 900
SWEEP_MARGIN_SEC = 300


@dataclass
class Recovered:
    """What one recovery pass did, by request or task id."""

    refunded: list[str] = field(default_factory=list)
    captured: list[str] = field(default_factory=list)
    failed_tasks: list[str] = field(default_factory=list)


def recover(
    runtime: Runtime, *, request_older_than_sec: int, task_older_than_sec: int, now: int | None = None
) -> Recovered:
    """Release the holds and end the tasks whose work can no longer be delivered.

    Parameters
    ----------
    request_older_than_sec
        A sync request's hold older than this is dead (its function's longest run, plus a margin).
    task_older_than_sec
        An unfinished task older than this is dead (its workflow's time limit, plus a margin).
    """
    clock = int(time.time()) if now is None else now
    done = Recovered()
    request_cutoff = clock - request_older_than_sec
    task_cutoff = clock - task_older_than_sec
    while True:
        holds = runtime.store.open_holds(created_before=request_cutoff, limit=_BATCH)
        progressed = False
        for debit in holds:
            request_id = debit.request_id
            if re.fullmatch(TASK_ID_PATTERN, request_id):
                task = runtime.tasks.get_task(request_id)
                if task is not None and task.status == "completed":
                    runtime.store.capture(request_id)
                    done.captured.append(request_id)
                    progressed = True
                    continue
                if task is not None and task.status not in FINAL_TASK_STATUSES:
                    if task.updated_at >= task_cutoff and task.created_at >= task_cutoff:
                        continue  # its workflow may still be running
                    fail_task(runtime, request_id, INTERRUPTED, error_name="Interrupted")
                    done.failed_tasks.append(request_id)
                    progressed = True
                    continue
            runtime.store.refund(request_id=request_id, reason="refund: the work was not delivered (recovery)")
            done.refunded.append(request_id)
            progressed = True
        if len(holds) < _BATCH or not progressed:
            break
    for task in runtime.tasks.list_unfinished(updated_before=task_cutoff, limit=1000):
        if fail_task(runtime, task.id, INTERRUPTED, error_name="Interrupted"):
            done.failed_tasks.append(task.id)
    if done.refunded or done.captured or done.failed_tasks:
        logger.info(
            "recovered",
            extra={
                "refunded": len(done.refunded),
                "captured": len(done.captured),
                "failed_tasks": len(done.failed_tasks),
            },
        )
    return done


def sweep(runtime: Runtime, *, now: int | None = None) -> Recovered:
    """The cloud's scheduled recovery: only work past the longest it could still be running."""
    recovered = recover(
        runtime,
        request_older_than_sec=LAMBDA_MAX_RUN_SEC + SWEEP_MARGIN_SEC,
        task_older_than_sec=WORKFLOW.timeout_sec + SWEEP_MARGIN_SEC,
        now=now,
    )
    released = len(recovered.refunded) + len(recovered.failed_tasks)
    metrics.add_metric(name="StrandedWorkReleased", unit=MetricUnit.Count, value=released)
    return recovered
