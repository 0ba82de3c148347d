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

from earshot.observability import logger, metrics

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
            steps = _flushing((self._steps or registry)(self._runtime))
            result = LocalRunner(steps, slot=lambda: self._slots).run(state)
            logger.info("task finished", extra={"task_id": task_id, "succeeded": result.succeeded})
        except Exception:  # the runner raises only when refund_and_fail itself failed
            logger.exception("task workflow failed", extra={"task_id": task_id})


def _flushing(
    steps: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]],
) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    """Each step flushes the metrics it emitted, as the workflow Lambda's handler does after every invocation."""

    def flushed(step: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def run(state: dict[str, Any]) -> dict[str, Any]:
            try:
                return step(state)
            finally:
                metrics.flush_metrics(raise_on_empty_metrics=False)

        return run

    return {name: flushed(step) for name, step in steps.items()}
