"""The async task workflow, defined once as data: Step Functions runs it in the cloud, ``LocalRunner`` locally.

``WORKFLOW`` lists the steps in order, each with its timeout and retry policy; any error a step's
retries do not absorb is caught and sent to ``refund_and_fail``, which gives back what was taken and
fails the task. ``to_state_machine_definition`` compiles it to Amazon States Language for the CDK
app; ``LocalRunner`` executes the same definition in-process with the same semantics:

- a step is a plain callable taking the JSON state and returning the next one (Step Functions
  passes the whole state in, and the step's output replaces it: the default ``ResultPath``);
- an error is matched by its *name*: the exception's class name, exactly as a Python Lambda reports
  it as ``errorType`` (no subclass matching, as in Step Functions), or ``States.Timeout`` for a step
  that ran out of time. ``States.ALL`` matches anything, ``States.TaskFailed`` anything but a timeout;
- retriers are tried in order and the first that matches applies, each with its own attempt count;
  before retry *n* (1-based) the wait is drawn uniformly from
  ``[0, min(interval * backoff_rate ** (n - 1), max_delay)]`` (``JitterStrategy: FULL``);
- a caught error lands in the state under ``error`` as ``{"Error": name, "Cause": json}`` (the
  Catch's ``ResultPath: $.error``), and the execution ends failed after ``refund_and_fail``.

Retry names are stable ``EarshotError`` subclass names or Step Functions' ``Lambda.*`` and
``States.*`` names; ``tests/unit/test_workflow.py`` holds them to that.

Long audio fans out in a **Map state** (``MapStep``): ``plan_chunks`` cuts the audio at silences and puts only
references in the state (``chunks``: index and offsets; the audio of each chunk is a blob keyed by task and index),
the Map runs ``run_chunk`` once per chunk, at most ``max_concurrency`` at a time, each iteration with the chunk's
own retries and timeout, and ``merge_chunks`` joins the results. Any chunk that fails after its retries fails the
Map (no tolerated failures), and the Map's Catch sends the task to ``refund_and_fail`` like any step. The local
runner runs the iterations on a pool of threads with the same semantics. ``map_mode`` picks an Inline Map while the
most chunks a task can have keep the execution history far from its 25,000-event limit, a Distributed Map (each
iteration a child execution) beyond.

Steps must be idempotent under retry: ``steps_idempotent`` records each step's output per (task,
step) so a retried or re-driven step returns what it returned before instead of running again.
``refund_and_fail`` must itself be safe for a task that already completed (``store_result`` is what
completes it, so only ``deliver_webhook`` can fail after that): it then refunds nothing.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from earshot.limits import MAX_TASK_AUDIO_SEC
from earshot.observability import logger
from earshot.ports import StepMarkers

State = dict[str, Any]
StepFn = Callable[[State], State]
StepRegistry = Mapping[str, StepFn]

# The top-level states of the success path, in order (``run_chunks`` is the Map state; ``run_chunk`` its iteration).
STEP_NAMES = (
    "resolve_input",
    "meter",
    "reserve",
    "plan_chunks",
    "run_chunks",
    "merge_chunks",
    "store_result",
    "settle",
    "deliver_webhook",
)
CHUNK_STEP = "run_chunk"
# The steps that run engines: deployed, the state machine invokes the inference function (the image with the
# models) for them, and the workflow function for the rest.
ENGINE_STEPS = ("plan_chunks", CHUNK_STEP, "merge_chunks")
REFUND_STEP = "refund_and_fail"
FAILED_STATE = "task_failed"
FAILED_STATE_ERROR = "TaskFailed"  # the error of an execution the workflow failed on purpose, after refunding
DONE_STATE = "task_done"  # where the success path ends when its last step is skipped
TIMEOUT_ERROR = "States.Timeout"
_ANY_ERROR = "States.ALL"
_ANY_TASK_ERROR = "States.TaskFailed"


@dataclass(frozen=True)
class Retrier:
    """One Step Functions retrier.

    Attributes
    ----------
    errors
        Error names it applies to (``ErrorEquals``).
    interval_sec
        Wait before the first retry, before jitter (``IntervalSeconds``, an integer >= 1).
    max_attempts
        Retries after the first attempt (``MaxAttempts``; 0 never retries).
    backoff_rate
        Multiplier of the wait per retry (``BackoffRate`` >= 1).
    max_delay_sec
        Cap on any one wait (``MaxDelaySeconds``).
    """

    errors: tuple[str, ...]
    interval_sec: int = 1
    max_attempts: int = 3
    backoff_rate: float = 2.0
    max_delay_sec: int = 30
    jitter: Literal["FULL"] = "FULL"

    def delay_cap(self, retry: int) -> float:
        """The longest wait before retry number ``retry`` (1-based); full jitter draws from ``[0, cap]``."""
        return float(min(self.interval_sec * self.backoff_rate ** (retry - 1), self.max_delay_sec))


@dataclass(frozen=True)
class Step:
    """A Task state: one step function, its time limit and its retriers (first match applies)."""

    name: str
    timeout_sec: int
    retries: tuple[Retrier, ...] = ()
    comment: str = ""
    # Run the step only when the state holds this field as a non-empty string; otherwise go straight on. Step
    # Functions sees it as a Choice state before the step (``choice_name``), the local runner tests the same.
    only_if_present: str | None = None

    @property
    def choice_name(self) -> str:
        return f"whether_{self.name}"

    def runs_on(self, state: Mapping[str, Any]) -> bool:
        """Whether the step runs on ``state`` (its Choice's test: the field is present and a non-empty string)."""
        if self.only_if_present is None:
            return True
        value = state.get(self.only_if_present)
        return isinstance(value, str) and value != ""


MapMode = Literal["INLINE", "DISTRIBUTED"]
# Step Functions ends a Standard execution whose history passes 25,000 events. An Inline Map's iterations write
# theirs into the parent's: each chunk about 7 (iteration started, task entered/scheduled/started/succeeded/exited,
# iteration succeeded), 3 more per retry. An Inline Map is kept below half the limit; beyond, each iteration runs as
# a child execution of a Distributed Map with its own history.
EXECUTION_HISTORY_LIMIT = 25_000
EVENTS_PER_ITERATION = 7
EVENTS_PER_RETRY = 3
# Step Functions runs at most 40 iterations of an Inline Map at once, whatever MaxConcurrency says.
INLINE_MAP_CONCURRENCY_LIMIT = 40


def map_mode(max_items: int, *, retries_per_item: int = 1) -> MapMode:
    """The Map mode for at most ``max_items`` items: Inline while their history fits half the execution's limit."""
    events = max_items * (EVENTS_PER_ITERATION + retries_per_item * EVENTS_PER_RETRY)
    return "INLINE" if events <= EXECUTION_HISTORY_LIMIT // 2 else "DISTRIBUTED"


@dataclass(frozen=True)
class MapStep:
    """A Map state: ``iterator`` runs once per element of the state's ``items_field`` list.

    Each iteration's state is ``{field: state[field] for field in carried}`` plus the element under ``item_field``
    (Step Functions' ``ItemSelector`` with ``$$.Map.Item.Value``): references only. The iterations' outputs are
    discarded (``ResultPath: null``): the state after the Map is the state before it, and the step after it reads
    what the iterations stored by key. One iteration failing after its retries fails the Map.
    """

    name: str
    iterator: Step
    items_field: str
    item_field: str
    max_concurrency: int
    mode: MapMode = "INLINE"
    carried: tuple[str, ...] = ("task_id",)
    comment: str = ""
    only_if_present: None = None  # a Map always runs (an empty list runs no iteration)

    def runs_on(self, state: Mapping[str, Any]) -> bool:
        del state
        return True


WorkflowStep = Union[Step, MapStep]  # noqa: UP007 - a runtime alias, kept 3.11-friendly for mypy and readers


@dataclass(frozen=True)
class Workflow:
    """The steps in execution order, and the step every uncaught failure goes to."""

    steps: tuple[WorkflowStep, ...]
    on_failure: Step
    timeout_sec: int
    comment: str = ""

    @property
    def all_steps(self) -> tuple[Step, ...]:
        """Every Task state, a Map's iteration included, and the failure step: each is one function's step."""
        tasks = tuple(step.iterator if isinstance(step, MapStep) else step for step in self.steps)
        return (*tasks, self.on_failure)

    @property
    def maps(self) -> tuple[MapStep, ...]:
        return tuple(step for step in self.steps if isinstance(step, MapStep))


# Invoking a Lambda can fail in the Lambda service itself; AWS recommends retrying these on every
# Lambda task. The function may or may not have run: ``steps_idempotent`` makes either case safe.
LAMBDA_SERVICE_ERRORS = Retrier(
    errors=(
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
    ),
    interval_sec=1,
    max_attempts=3,
    backoff_rate=2.0,
    max_delay_sec=10,
)
# A step that timed out may well succeed on a second try (a cold dependency, a slow disk).
_TIMED_OUT_ONCE = Retrier(errors=(TIMEOUT_ERROR,), interval_sec=2, max_attempts=1)
# The balance is contended (DynamoStore gave up after its own retries): wait and settle again.
_CONTENDED_BALANCE = Retrier(
    errors=("RateLimitedError", TIMEOUT_ERROR), interval_sec=1, max_attempts=5, backoff_rate=2.0, max_delay_sec=20
)

# The most chunks a task can have: the longest task audio cut at the shortest chunk the planner makes (a cut never
# falls in a chunk's first quarter, earshot.engines.fanout.cut_at_silences), with the default 60-s chunks.
MAX_CHUNK_SEC = 60.0
MAX_CHUNKS = math.ceil(MAX_TASK_AUDIO_SEC / (MAX_CHUNK_SEC / 4))
# Chunks of one task run at once: each is one inference invocation, so this bounds what one task takes of the
# inference function's reserved concurrency (infra/config.py: 20 in dev), leaving the rest to sync requests.
MAP_MAX_CONCURRENCY = 10

WORKFLOW = Workflow(
    comment="Earshot async task: resolve input, meter, reserve, plan chunks, run them, merge, store, settle, deliver",
    steps=(
        Step(
            "resolve_input",
            timeout_sec=300,
            retries=(LAMBDA_SERVICE_ERRORS, _TIMED_OUT_ONCE),
            comment="Bring the audio (upload, URL through the SSRF-safe fetcher, or inline) into the blob store",
        ),
        Step("meter", timeout_sec=120, retries=(LAMBDA_SERVICE_ERRORS, _TIMED_OUT_ONCE), comment="ffprobe duration"),
        Step(
            "reserve",
            timeout_sec=30,
            retries=(LAMBDA_SERVICE_ERRORS, _CONTENDED_BALANCE),
            comment="Debit the metered price, keyed by task id (BillingError is final: caught, nothing to refund)",
        ),
        Step(
            "plan_chunks",
            timeout_sec=900,
            retries=(LAMBDA_SERVICE_ERRORS, _TIMED_OUT_ONCE),
            comment="Cut long audio at silences (voice activity) into chunk blobs; the state gets their offsets only",
        ),
        MapStep(
            "run_chunks",
            iterator=Step(
                CHUNK_STEP,
                timeout_sec=900,
                # Not ProviderError/ProviderTimeoutError: the provider adapters already spend the whole
                # "3 attempts across all layers" budget; retrying here would multiply upstream calls.
                retries=(LAMBDA_SERVICE_ERRORS,),
                comment="The model on one chunk (an embedded engine), or on the whole audio (anything else)",
            ),
            items_field="chunks",
            item_field="chunk",
            # References and figures only: the task, its audio's key, the metered length and the debit (a whole
            # chunk renders the task's result, which shows the bill).
            carried=("task_id", "audio", "metered", "debit"),
            max_concurrency=MAP_MAX_CONCURRENCY,
            mode=map_mode(MAX_CHUNKS, retries_per_item=1),
            comment="Every chunk through the engine, at most MAP_MAX_CONCURRENCY at once; one failure fails the task",
        ),
        Step(
            "merge_chunks",
            timeout_sec=900,
            retries=(LAMBDA_SERVICE_ERRORS, _TIMED_OUT_ONCE),
            comment="Join the chunks: exact offsets, one language, speakers across chunks; render the result",
        ),
        Step(
            "store_result",
            timeout_sec=60,
            retries=(LAMBDA_SERVICE_ERRORS, Retrier(errors=(TIMEOUT_ERROR,), interval_sec=2, max_attempts=2)),
            comment="Results into the task (or the blob store when large); the task becomes completed",
        ),
        Step(
            "settle",
            timeout_sec=30,
            retries=(LAMBDA_SERVICE_ERRORS, _CONTENDED_BALANCE),
            comment="The task is completed: its held charge becomes final (crash recovery releases open holds)",
        ),
        Step(
            "deliver_webhook",
            timeout_sec=180,
            # ``webhooks.deliver`` retries the receiver itself and reports failure in its record
            # rather than raising: a completed task is not failed by an unreachable receiver.
            retries=(LAMBDA_SERVICE_ERRORS,),
            comment="POST the final task to callback_url, signed (Standard Webhooks)",
            # No callback, no invocation: the Choice before it goes straight to the end. The state says only that
            # there is one (``notify``); the URL itself stays in the task record.
            only_if_present="notify",
        ),
    ),
    on_failure=Step(
        REFUND_STEP,
        timeout_sec=60,
        retries=(
            LAMBDA_SERVICE_ERRORS,
            Retrier(
                errors=("RateLimitedError", TIMEOUT_ERROR, _ANY_TASK_ERROR),
                interval_sec=2,
                max_attempts=8,
                backoff_rate=2.0,
                max_delay_sec=60,
            ),
        ),
        comment="Refund the task's debit (once, by request id), fail the task, notify the callback",
    ),
    # Every step at its timeout, retried to the limit with the longest waits, plus the longest task's chunks round
    # after round at the slowest engine's measured rate, stays under this (tests/unit/test_workflow.py).
    timeout_sec=6 * 3600,
)


# -- Amazon States Language ------------------------------------------------------------------------
def _retrier(policy: Retrier) -> dict[str, Any]:
    return {
        "ErrorEquals": list(policy.errors),
        "IntervalSeconds": policy.interval_sec,
        "MaxAttempts": policy.max_attempts,
        "BackoffRate": policy.backoff_rate,
        "MaxDelaySeconds": policy.max_delay_sec,
        "JitterStrategy": policy.jitter,
    }


def _task_state(step: Step, function_arn: str, partition: str) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Comment": step.comment,
        "Resource": f"arn:{partition}:states:::lambda:invoke",
        # One payload shape for every step, so one function may serve several (see ``dispatch_step``).
        "Parameters": {"FunctionName": function_arn, "Payload": {"step": step.name, "state.$": "$"}},
        "OutputPath": "$.Payload",  # the function's return value becomes the state
        "TimeoutSeconds": step.timeout_sec,
        "Retry": [_retrier(policy) for policy in step.retries],
    }


def _map_state(step: MapStep, function_arns: Mapping[str, str], partition: str) -> dict[str, Any]:
    iteration = _task_state(step.iterator, function_arns[step.iterator.name], partition)
    iteration["End"] = True
    processor: dict[str, Any] = {"Mode": step.mode}
    selector = {f"{name}.$": f"$.{name}" for name in step.carried}
    selector[f"{step.item_field}.$"] = "$$.Map.Item.Value"
    state: dict[str, Any] = {
        "Type": "Map",
        "Comment": step.comment,
        "ItemsPath": f"$.{step.items_field}",
        "ItemSelector": selector,
        "MaxConcurrency": step.max_concurrency,
        "ItemProcessor": {
            "ProcessorConfig": processor,
            "StartAt": step.iterator.name,
            "States": {step.iterator.name: iteration},
        },
        # The iterations store their results by key; the state after the Map is the state before it.
        "ResultPath": None,
    }
    if step.mode == "DISTRIBUTED":
        # Each iteration a child execution with its own history; Standard, as the parent (exactly-once steps and
        # run_chunk's 900 s, past Express's 5 minutes). No failure is tolerated: one failed chunk fails the task
        # (an Inline Map fails on the first failed iteration by itself).
        processor["ExecutionType"] = "STANDARD"
        state["ToleratedFailurePercentage"] = 0
        state["Label"] = step.name.replace("_", "")
    return state


def to_state_machine_definition(
    function_arns: Mapping[str, str], *, workflow: Workflow = WORKFLOW, partition: str = "aws"
) -> dict[str, Any]:
    """The Step Functions (Standard) definition of ``workflow``, as a JSON-able dict.

    Parameters
    ----------
    function_arns
        The Lambda function (ARN, or a CDK token that resolves to one) for every Task state (a Map's iteration
        included) and for the failure step. Several steps may share a function: the payload names the step.
    workflow
        The workflow to compile.
    partition
        The AWS partition in the Task states' ``Resource`` ARN (``aws``, ``aws-cn``, ``aws-us-gov``…), or a
        placeholder such as ``${Partition}`` that the state machine's definition substitutions fill in at deploy.

    Raises
    ------
    ValueError
        A step has no function.
    """
    missing = [step.name for step in workflow.all_steps if step.name not in function_arns]
    if missing:
        raise ValueError(f"no function for step(s): {', '.join(missing)}")
    catch = [{"ErrorEquals": [_ANY_ERROR], "ResultPath": "$.error", "Next": workflow.on_failure.name}]
    states: dict[str, Any] = {}

    def entry(index: int) -> str:
        """The state that starts step ``index``: its Choice if it has one, else its Task."""
        step = workflow.steps[index]
        return step.choice_name if isinstance(step, Step) and step.only_if_present is not None else step.name

    for index, step in enumerate(workflow.steps):
        following = entry(index + 1) if index + 1 < len(workflow.steps) else None
        if isinstance(step, Step) and step.only_if_present is not None:
            field = f"$.{step.only_if_present}"
            states[step.choice_name] = {
                "Type": "Choice",
                "Comment": f"Run {step.name} only when the state has a {step.only_if_present}",
                "Choices": [
                    {
                        "And": [
                            {"Variable": field, "IsPresent": True},
                            {"Variable": field, "IsString": True},
                            {"Not": {"Variable": field, "StringEquals": ""}},
                        ],
                        "Next": step.name,
                    }
                ],
                "Default": following or DONE_STATE,
            }
        if isinstance(step, MapStep):
            state = _map_state(step, function_arns, partition)
        else:
            state = _task_state(step, function_arns[step.name], partition)
        if following is not None:
            state["Next"] = following
        else:
            state["End"] = True
        state["Catch"] = catch
        states[step.name] = state
    if any(isinstance(step, Step) and step.only_if_present is not None for step in workflow.steps):
        states[DONE_STATE] = {"Type": "Succeed", "Comment": "The task completed"}
    refund = _task_state(workflow.on_failure, function_arns[workflow.on_failure.name], partition)
    refund["Next"] = FAILED_STATE
    states[workflow.on_failure.name] = refund
    states[FAILED_STATE] = {
        "Type": "Fail",
        "Comment": "The task failed and was refunded; its error is on the task",
        "Error": FAILED_STATE_ERROR,
        "Cause": "A step failed after its retries; see the execution history and the task's error",
    }
    return {
        "Comment": workflow.comment,
        "StartAt": entry(0),
        "TimeoutSeconds": workflow.timeout_sec,
        "States": states,
    }


def dispatch_step(steps: StepRegistry, event: Mapping[str, Any]) -> State:
    """What a step Lambda's handler does with the state machine's payload ``{"step": ..., "state": ...}``."""
    name = event.get("step")
    if not isinstance(name, str) or name not in steps:
        raise ValueError(f"unknown workflow step {name!r}")
    state = event.get("state")
    if not isinstance(state, dict):
        raise ValueError("the workflow payload has no state object")
    return steps[name](state)


# -- running it in-process -------------------------------------------------------------------------
class StepTimeoutError(Exception):
    """A local step overran its ``timeout_sec``; reported under the name ``States.Timeout``."""


def error_name(exc: BaseException) -> str:
    """The name Retry/Catch rules see: ``States.Timeout`` for a timeout, else the class name (as Lambda's errorType)."""
    return TIMEOUT_ERROR if isinstance(exc, StepTimeoutError) else type(exc).__name__


def _matches(policy: Retrier, name: str) -> bool:
    if name in policy.errors or _ANY_ERROR in policy.errors:
        return True
    return _ANY_TASK_ERROR in policy.errors and name != TIMEOUT_ERROR


@dataclass
class Attempt:
    step: str
    attempt: int
    error: str | None = None
    slept_sec: float = 0.0


@dataclass
class RunResult:
    """How a local execution ended: the final state, and every attempt in order (the execution history)."""

    succeeded: bool
    state: State
    error: dict[str, str] | None = None
    history: list[Attempt] = field(default_factory=list)


class LocalRunner:
    """Runs ``workflow`` in-process: the same steps in the same order with the same retries and catch.

    Timeouts are enforced with a thread: each attempt runs in a daemon thread and the runner waits at
    most ``timeout_sec`` for it. An attempt that overruns is reported as ``States.Timeout`` and
    abandoned; Python cannot stop a thread, so it runs on in the background and its result is
    discarded (as a Lambda runs on after Step Functions has timed its task out). Steps wrapped with
    ``steps_idempotent`` make that overlap harmless. ``enforce_timeouts=False`` runs attempts inline.

    Parameters
    ----------
    steps
        A callable for every step of the workflow and for ``refund_and_fail``.
    sleep, rand
        Injectable for tests: the wait between attempts, and the uniform [0, 1) source of jitter.
    slot
        Entered around each step attempt (not around the waits between attempts): a worker limit that a
        task waiting to retry does not hold.
    map_workers
        Threads a Map state's iterations run on (at most its ``max_concurrency``); default: this machine's cores.
        They stand in for the concurrent invocations Step Functions makes.
    """

    def __init__(
        self,
        steps: StepRegistry,
        *,
        workflow: Workflow = WORKFLOW,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        enforce_timeouts: bool = True,
        slot: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
        map_workers: int | None = None,
    ) -> None:
        missing = [step.name for step in workflow.all_steps if step.name not in steps]
        if missing:
            raise ValueError(f"no function for step(s): {', '.join(missing)}")
        self._steps = steps
        self._workflow = workflow
        self._sleep = sleep
        self._rand = rand
        self._enforce_timeouts = enforce_timeouts
        self._slot = slot
        self._map_workers = max(1, map_workers or os.cpu_count() or 1)

    def run(self, state: State) -> RunResult:
        """Execute the workflow on ``state``.

        Returns a failed ``RunResult`` after ``refund_and_fail`` ran; raises only when
        ``refund_and_fail`` itself fails after its retries (an execution Step Functions would
        also end failed, with the task left for an operator).
        """
        history: list[Attempt] = []
        current = state
        for step in self._workflow.steps:
            if not step.runs_on(current):  # the Choice before the step goes straight on
                continue
            try:
                if isinstance(step, MapStep):
                    current = self._run_map(step, current, history)
                else:
                    current = self._run_step(step, current, history)
            except Exception as exc:
                name = error_name(exc)
                # The shape Step Functions puts at the Catch's ResultPath for a Lambda error.
                error = {"Error": name, "Cause": json.dumps({"errorMessage": str(exc), "errorType": name})}
                logger.info("workflow step failed", extra={"step": step.name, "error": name})
                failed_state = {**current, "error": error}
                final = self._run_step(self._workflow.on_failure, failed_state, history)
                return RunResult(succeeded=False, state=final, error=error, history=history)
        return RunResult(succeeded=True, state=current, history=history)

    def _run_map(self, step: MapStep, state: State, history: list[Attempt]) -> State:
        """Every item through ``step.iterator`` on a pool of threads; the first failure (after its retries) stops
        the items not yet started and fails the Map. The state comes out as it went in (``ResultPath: null``)."""
        items = state.get(step.items_field)
        if not isinstance(items, list):
            raise TypeError(f"the Map {step.name} needs a list at {step.items_field!r}")
        carried = {name: state.get(name) for name in step.carried}
        inputs = [{**carried, step.item_field: item} for item in items]
        if not inputs:
            return state
        workers = min(step.max_concurrency, self._map_workers, len(inputs))
        if workers == 1:
            for item_state in inputs:
                self._run_step(step.iterator, item_state, history)
            return state
        failed = threading.Event()

        def iteration(item_state: State) -> State:
            if failed.is_set():
                raise _NotStarted()
            try:
                return self._run_step(step.iterator, item_state, history)
            except BaseException:
                failed.set()
                raise

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"workflow-{step.name}") as pool:
            futures: list[Future[State]] = [pool.submit(iteration, item_state) for item_state in inputs]
            wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            error = future.exception()
            if error is not None and not isinstance(error, _NotStarted):
                raise error
        return state

    def _run_step(self, step: Step, state: State, history: list[Attempt]) -> State:
        used: dict[int, int] = {}  # retries spent per retrier, as Step Functions counts them
        slept = 0.0
        attempt = 1
        while True:
            record = Attempt(step=step.name, attempt=attempt, slept_sec=slept)
            history.append(record)
            try:
                with self._slot():
                    return self._call(step, state)
            except Exception as exc:
                name = error_name(exc)
                record.error = name
                index = next((i for i, policy in enumerate(step.retries) if _matches(policy, name)), None)
                if index is None:
                    raise
                policy = step.retries[index]
                used[index] = used.get(index, 0) + 1
                if used[index] > policy.max_attempts:
                    raise
                slept = self._rand() * policy.delay_cap(used[index])
                logger.info("retrying workflow step", extra={"step": step.name, "error": name, "wait_sec": slept})
                self._sleep(slept)
                attempt += 1

    def _call(self, step: Step, state: State) -> State:
        fn = self._steps[step.name]
        # Each attempt gets its own copy, as each Lambda invocation gets its own deserialized payload.
        payload: State = json.loads(json.dumps(state))
        if not self._enforce_timeouts:
            return _checked(step, fn(payload))
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def attempt() -> None:
            try:
                outcome["state"] = fn(payload)
            except BaseException as exc:  # handed to the runner's thread
                outcome["error"] = exc
            finally:
                done.set()

        threading.Thread(target=attempt, name=f"workflow-{step.name}", daemon=True).start()
        if not done.wait(step.timeout_sec):
            raise StepTimeoutError(f"step {step.name} did not finish within {step.timeout_sec} s")
        if "error" in outcome:
            raise outcome["error"]
        return _checked(step, outcome["state"])


class _NotStarted(Exception):
    """A Map iteration not started because another had failed."""


def _checked(step: Step, output: Any) -> State:
    if not isinstance(output, dict):
        raise TypeError(f"step {step.name} returned {type(output).__name__}, not a state object")
    return output


# -- idempotent steps ------------------------------------------------------------------------------
def idempotent_step(
    markers: StepMarkers,
    name: str,
    fn: StepFn,
    *,
    task_key: str = "task_id",
    marker: Callable[[State], str] | None = None,
) -> StepFn:
    """Wrap ``fn`` so that, per task, it runs until it has once succeeded and then only replays that output.

    The first successful attempt's output is recorded under (``state[task_key]``, ``name``) (or the name
    ``marker(state)`` gives: a Map iteration's, one per item); a
    retry, a re-driven execution or a concurrent duplicate gets the recorded output back without
    running ``fn``. Two attempts that overlap (a timed-out attempt still running) may both run;
    the first to record wins and both return its output, so later steps see one outcome.
    """

    def run(state: State) -> State:
        task_id = state.get(task_key)
        if not isinstance(task_id, str) or not task_id:
            raise ValueError(f"the workflow state has no {task_key!r}")
        step = marker(state) if marker is not None else name
        recorded = markers.get_step_output(task_id, step)
        if recorded is not None:
            logger.info("workflow step replayed", extra={"task_id": task_id, "step": step})
            return recorded
        if not markers.claim_step(task_id, step):
            logger.info("workflow step re-run after an unfinished attempt", extra={"task_id": task_id, "step": step})
        return markers.record_step_output(task_id, step, fn(state))

    run.__name__ = getattr(fn, "__name__", name)
    return run


def item_marker(step: MapStep) -> Callable[[State], str]:
    """The marker name of one iteration of ``step``: the iterator's name and the item's ``index`` (else a digest of
    the item), so each item is run once however often the Map or one iteration is retried."""
    import hashlib

    def name(state: State) -> str:
        item = state.get(step.item_field)
        if isinstance(item, dict) and isinstance(item.get("index"), int):
            return f"{step.iterator.name}#{item['index']}"
        digest = hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:16]
        return f"{step.iterator.name}#{digest}"

    return name


def steps_idempotent(
    markers: StepMarkers, steps: StepRegistry, *, task_key: str = "task_id", workflow: Workflow = WORKFLOW
) -> dict[str, StepFn]:
    """Every step of ``steps`` wrapped with ``idempotent_step`` (ready for ``LocalRunner`` or ``dispatch_step``); a
    Map's iterator is made idempotent per item."""
    per_item = {step.iterator.name: item_marker(step) for step in workflow.maps}
    return {
        name: idempotent_step(markers, name, fn, task_key=task_key, marker=per_item.get(name))
        for name, fn in steps.items()
    }
