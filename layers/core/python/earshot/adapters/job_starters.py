"""The two ``JobStarter`` adapters: Step Functions in the cloud, the in-process ``LocalRunner`` locally.

Locally the same steps run in the same order, with the same retry policy and catch as the state machine,
each step an invocation of the same workflow function. A task id starts at most once per process (Step
Functions' execution names give the same guarantee in the cloud).

Each local workflow has its own thread; a slot (one of ``_WORKERS``) is held only while a step attempt
runs, never while a failed step waits for its retry, so a task backing off cannot delay the next one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from earshot.observability import logger
from earshot.workflow import ENGINE_STEPS, WORKFLOW, LocalRunner


class StepFunctionsJobStarter:
    """Starts the Standard state machine; the execution is named after the task, so a duplicate starts nothing."""

    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._client = client
        self._arn = state_machine_arn

    def start(self, task_id: str, state: dict[str, Any]) -> None:
        import contextlib
        import json

        with contextlib.suppress(self._client.exceptions.ExecutionAlreadyExists):
            self._client.start_execution(stateMachineArn=self._arn, name=task_id, input=json.dumps(state))


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
        try:
            steps = self._steps(self._runtime) if self._steps else _via_workflow_function()
            workers = getattr(getattr(self._runtime, "settings", None), "fanout_workers", None)
            result = LocalRunner(steps, slot=lambda: self._slots, map_workers=workers).run(state)
            logger.info("task finished", extra={"task_id": task_id, "succeeded": result.succeeded})
        except Exception:  # the runner raises only when refund_and_fail itself failed
            logger.exception("task workflow failed", extra={"task_id": task_id})


def _via_workflow_function() -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    """Every step as Step Functions runs it: an invocation with ``{step, state}`` of the function that runs it, the
    inference function for the engine steps (the chunks of a Map included), the workflow function for the rest.

    The functions' handlers (``functions/<name>/handler.py``, loaded as Lambda loads them) bind the steps to the
    runtime, make them idempotent and flush their metrics after each invocation.
    """
    from earshot.adapters.local_lambda import LocalContext, load_handler

    def invoke(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        function = "inference" if name in ENGINE_STEPS else "workflow"
        handler = load_handler(function)

        def run(state: dict[str, Any]) -> dict[str, Any]:
            return handler({"step": name, "state": state}, LocalContext(function, timeout_sec=900.0))

        return run

    return {step.name: invoke(step.name) for step in WORKFLOW.all_steps}
