"""Local mode's ``JobStarter``: the in-process ``LocalRunner`` on a small thread pool.

Runs the same steps, in the same order, with the same retry policy and catch as the Step
Functions state machine. A task id starts at most once per process (Step Functions' execution
names give the same guarantee in the cloud).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from earshot.observability import logger

_WORKERS = 2


class LocalJobStarter:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="earshot-task")
        self._started: set[str] = set()
        self._lock = threading.Lock()

    def start(self, task_id: str, state: dict[str, Any]) -> None:
        with self._lock:
            if task_id in self._started:
                return
            self._started.add(task_id)
        self._pool.submit(self._run, task_id, state)

    @staticmethod
    def _run(task_id: str, state: dict[str, Any]) -> None:
        from earshot.jobs.steps import registry
        from earshot.runtime import get_runtime
        from earshot.workflow import LocalRunner

        try:
            result = LocalRunner(registry(get_runtime())).run(state)
            logger.info("task finished", extra={"task_id": task_id, "succeeded": result.succeeded})
        except Exception:  # the runner raises only when refund_and_fail itself failed
            logger.exception("task workflow failed", extra={"task_id": task_id})
