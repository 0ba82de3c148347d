"""Local mode's ``JobStarter``: the in-process ``LocalRunner``, at most two steps running at a time.

Runs the same steps, in the same order, with the same retry policy and catch as the Step
Functions state machine. A task id starts at most once per process (Step Functions' execution
names give the same guarantee in the cloud).

Each workflow has its own thread; a slot (one of ``_WORKERS``) is held only while a step attempt
runs, never while a failed step waits for its retry, so a task backing off cannot delay the next one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from earshot.observability import logger

_WORKERS = 2


class LocalJobStarter:
    """Runs workflows on the runtime that started them (steps are bound to it)."""

    def __init__(
        self,
        runtime: Any,
        *,
        workers: int = _WORKERS,
        steps: Callable[[Any], Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]]] | None = None,
    ) -> None:
        self._runtime = runtime
        self._steps = steps
        self._slots = threading.BoundedSemaphore(workers)
        self._started: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self, task_id: str, state: dict[str, Any]) -> None:
        with self._lock:
            if task_id in self._started:
                return
            self._started.add(task_id)
            thread = threading.Thread(target=self._run, args=(task_id, state), name=f"earshot-{task_id}", daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def wait_idle(self) -> None:
        """Wait for every started workflow to finish (tests and shutdown)."""
        while True:
            with self._lock:
                running = [t for t in self._threads if t.is_alive()]
            if not running:
                return
            for thread in running:
                thread.join()

    def _run(self, task_id: str, state: dict[str, Any]) -> None:
        from earshot.jobs.steps import registry
        from earshot.workflow import LocalRunner

        try:
            steps = (self._steps or registry)(self._runtime)
            result = LocalRunner(steps, slot=lambda: self._slots).run(state)
            logger.info("task finished", extra={"task_id": task_id, "succeeded": result.succeeded})
        except Exception:  # the runner raises only when refund_and_fail itself failed
            logger.exception("task workflow failed", extra={"task_id": task_id})
