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
    """Runs workflows on the runtime that started them (steps are bound to it)."""

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime
        self._pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="earshot-task")
        self._started: set[str] = set()
        self._lock = threading.Lock()

    def start(self, task_id: str, state: dict[str, Any]) -> None:
        with self._lock:
            if task_id in self._started:
                return
            self._started.add(task_id)
        self._pool.submit(self._run, task_id, state)

    def wait_idle(self) -> None:
        """Wait for every started workflow to finish (tests and shutdown)."""
        self._pool.shutdown(wait=True)

    def _run(self, task_id: str, state: dict[str, Any]) -> None:
        from earshot.jobs.steps import registry
        from earshot.workflow import LocalRunner

        try:
            result = LocalRunner(registry(self._runtime)).run(state)
            logger.info("task finished", extra={"task_id": task_id, "succeeded": result.succeeded})
        except Exception:  # the runner raises only when refund_and_fail itself failed
            logger.exception("task workflow failed", extra={"task_id": task_id})
