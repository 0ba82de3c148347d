"""A task as clients see it: the caller's own task, its document (results from the blob store), waiting for it."""

from __future__ import annotations

import json
import time
from typing import Any

from earshot.errors import NotFoundError
from earshot.ports import FINAL_TASK_STATUSES, Principal, Task
from earshot.runtime import Runtime
from earshot.schemas import TaskOut

FINAL = tuple(sorted(FINAL_TASK_STATUSES))
_POLL_SEC = 0.2


def owned_task(runtime: Runtime, principal: Principal, task_id: str) -> Task:
    """The caller's task; another account's task is indistinguishable from a missing one."""
    task = runtime.tasks.get_task(task_id)
    if task is None or task.account_id != principal.account_id:
        raise NotFoundError(f"no task {task_id}", param="task_id")
    return task


def task_document(runtime: Runtime, task: Task) -> dict[str, Any]:
    results = task.results
    if task.result_blob_key:
        results = [json.loads(runtime.blobs.get(task.result_blob_key))]
    return TaskOut.from_task(task, results=results).model_dump(mode="json")


def wait_for_final(runtime: Runtime, task: Task, wait_sec: float) -> Task:
    deadline = time.monotonic() + wait_sec
    while task.status not in FINAL and time.monotonic() < deadline:
        time.sleep(_POLL_SEC)
        task = runtime.tasks.get_task(task.id) or task
    return task
