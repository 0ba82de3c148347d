"""The one workflow definition: its Step Functions document, and the local runner executing the same policy."""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from earshot import errors
from earshot.errors import (
    BillingError,
    EarshotError,
    InvalidAudioError,
    ProviderError,
    RateLimitedError,
    TaskTransitionError,
)
from earshot.workflow import (
    CHUNK_STEP,
    DONE_STATE,
    FAILED_STATE,
    REFUND_STEP,
    STEP_NAMES,
    WORKFLOW,
    LocalRunner,
    MapStep,
    Retrier,
    State,
    Step,
    StepFn,
    Workflow,
    dispatch_step,
    steps_idempotent,
    to_state_machine_definition,
)

# Every Task state's function (the Map's iteration included); the Map state itself invokes nothing.
TASK_NAMES = tuple(step.name for step in WORKFLOW.all_steps)
ARNS = {name: f"arn:aws:lambda:us-east-1:123456789012:function:earshot-dev-{name}" for name in TASK_NAMES}
# The success path as a recorder sees it: the two chunks its plan_chunks plans each run once; the Map adds nothing.
TWO_CHUNKS = [{"index": 0, "start": 0.0, "end": 55.0}, {"index": 1, "start": 55.0, "end": 100.0}]
CALLS = [
    *[name for name in STEP_NAMES[: STEP_NAMES.index("run_chunks")]],
    CHUNK_STEP,
    CHUNK_STEP,
    *STEP_NAMES[STEP_NAMES.index("run_chunks") + 1 :],
]
DONE = [name for name in STEP_NAMES if name != "run_chunks"]


def _error_class_names() -> set[str]:
    names: set[str] = set()
    pending: list[type[BaseException]] = [EarshotError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return names


class Recorder:
    """Step callables that log their calls, each adding its name to the state, failing as scripted."""

    def __init__(self, failures: dict[str, list[BaseException]] | None = None) -> None:
        self.calls: list[str] = []
        self.failures = failures or {}
        self.lock = threading.Lock()

    def step(self, name: str) -> StepFn:
        def run(state: State) -> State:
            with self.lock:
                self.calls.append(name)
                scripted = self.failures.get(name)
                failure = scripted.pop(0) if scripted else None
            if failure is not None:
                raise failure
            if name == CHUNK_STEP:
                return {"index": state["chunk"]["index"]}
            planned = {"chunks": TWO_CHUNKS} if name == "plan_chunks" else {}
            return {**state, **planned, "done": [*state.get("done", []), name]}

        return run

    def registry(self) -> dict[str, StepFn]:
        return {name: self.step(name) for name in TASK_NAMES}


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


# -- the definition ---------------------------------------------------------------------------------
def test_the_workflow_runs_the_steps_of_the_issue_in_order() -> None:
    assert [step.name for step in WORKFLOW.steps] == [
        "resolve_input",
        "meter",
        "reserve",
        "plan_chunks",
        "run_chunks",
        "merge_chunks",
        "store_result",
        "settle",
        "deliver_webhook",
    ]
    assert WORKFLOW.on_failure.name == REFUND_STEP


def test_retry_names_are_stable_error_classes_or_step_functions_names() -> None:
    known = _error_class_names()
    for step in WORKFLOW.all_steps:
        for policy in step.retries:
            for name in policy.errors:
                assert name in known or name.startswith(("Lambda.", "States.")), (step.name, name)
                assert name != "States.ALL", "a catch-all retrier would retry bugs and billing refusals"
    assert "BillingError" in known and "RateLimitedError" in known


def test_every_step_has_a_timeout_and_retries_lambda_service_errors() -> None:
    for step in WORKFLOW.all_steps:
        assert 1 <= step.timeout_sec <= 900  # a Lambda runs at most 15 minutes
        assert any("Lambda.ServiceException" in policy.errors for policy in step.retries), step.name


def test_provider_failures_are_not_retried_by_the_workflow() -> None:
    # The provider adapters already spent the 3-attempt budget; the workflow must not multiply it.
    run_chunk = next(step for step in WORKFLOW.all_steps if step.name == CHUNK_STEP)
    assert not any({"ProviderError", "ProviderTimeoutError"} & set(policy.errors) for policy in run_chunk.retries)


def _at_worst(step: Step) -> float:
    retries = sum(policy.max_attempts for policy in step.retries)
    waits = sum(policy.delay_cap(n) for policy in step.retries for n in range(1, policy.max_attempts + 1))
    return step.timeout_sec * (1 + retries) + waits


def test_the_execution_timeout_covers_every_step_at_its_worst() -> None:
    from earshot.services.sync_budget import ENGINE_SEC_PER_AUDIO_SEC, PER_CHUNK_OVERHEAD_SEC, SAFETY_FACTOR
    from earshot.workflow import MAX_CHUNK_SEC, MAX_CHUNKS

    (chunks,) = WORKFLOW.maps
    worst = sum(_at_worst(step) for step in WORKFLOW.all_steps)  # one chunk at its worst, every other step too
    # The longest task's chunks, round after round of max_concurrency, each at the slowest engine's measured rate.
    chunk_sec = (MAX_CHUNK_SEC * max(ENGINE_SEC_PER_AUDIO_SEC.values()) + PER_CHUNK_OVERHEAD_SEC) * SAFETY_FACTOR
    worst += math.ceil(MAX_CHUNKS / chunks.max_concurrency) * chunk_sec
    assert worst < WORKFLOW.timeout_sec


# -- the Amazon States Language document ------------------------------------------------------------
def test_the_state_machine_is_structurally_valid() -> None:
    definition = to_state_machine_definition(ARNS)
    states: dict[str, Any] = definition["States"]

    assert json.loads(json.dumps(definition)) == definition  # what DefinitionBody.from_string receives
    assert definition["StartAt"] == "resolve_input" and definition["StartAt"] in states
    assert isinstance(definition["TimeoutSeconds"], int)
    for name, state in states.items():
        assert state["Type"] in {"Task", "Map", "Fail", "Succeed", "Pass", "Choice"}
        if state["Type"] == "Choice":
            assert "Next" not in state and "End" not in state, name
            assert state["Default"] in states and all(choice["Next"] in states for choice in state["Choices"])
            continue
        assert ("Next" in state) != (state.get("End") is True) or state["Type"] in {"Fail", "Succeed"}, name
        if "Next" in state:
            assert state["Next"] in states, name
        for catcher in state.get("Catch", []):
            assert catcher["Next"] in states
    reachable, frontier = set(), [definition["StartAt"]]
    while frontier:
        name = frontier.pop()
        if name in reachable:
            continue
        reachable.add(name)
        state = states[name]
        frontier.extend([state["Next"]] if "Next" in state else [])
        frontier.extend(catcher["Next"] for catcher in state.get("Catch", []))
        frontier.extend(
            [state["Default"], *(choice["Next"] for choice in state["Choices"])] if "Choices" in state else []
        )
    assert reachable == set(states)


def _task_states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every Task state, those inside a Map's ItemProcessor too."""
    found: dict[str, dict[str, Any]] = {}
    for name, state in definition["States"].items():
        if state["Type"] == "Task":
            found[name] = state
        elif state["Type"] == "Map":
            found.update(_task_states(state["ItemProcessor"]))
    return found


def test_each_step_is_a_lambda_task_with_timeout_retry_and_catch() -> None:
    definition = to_state_machine_definition(ARNS)
    tasks = _task_states(definition)

    for step in WORKFLOW.all_steps[:-1]:
        state = tasks[step.name]
        # A chunk's failure is caught by its Map (the Map's Catch refunds); every top-level state catches.
        holder = (
            definition["States"][step.name] if step.name in definition["States"] else definition["States"]["run_chunks"]
        )
        assert state["Type"] == "Task" and state["Resource"] == "arn:aws:states:::lambda:invoke"
        assert state["Parameters"] == {"FunctionName": ARNS[step.name], "Payload": {"step": step.name, "state.$": "$"}}
        assert state["OutputPath"] == "$.Payload"
        assert state["TimeoutSeconds"] == step.timeout_sec and isinstance(state["TimeoutSeconds"], int)
        assert holder["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": REFUND_STEP}]
        assert len(state["Retry"]) == len(step.retries) >= 1
        for retrier, policy in zip(state["Retry"], step.retries, strict=True):
            assert set(retrier) == {
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
            }
            assert retrier["ErrorEquals"] == list(policy.errors) and retrier["ErrorEquals"]
            assert retrier["JitterStrategy"] == "FULL"
            assert isinstance(retrier["IntervalSeconds"], int) and retrier["IntervalSeconds"] >= 1
            assert isinstance(retrier["MaxAttempts"], int) and retrier["MaxAttempts"] >= 0
            assert retrier["BackoffRate"] >= 1.0
            assert isinstance(retrier["MaxDelaySeconds"], int) and retrier["MaxDelaySeconds"] >= 1


def test_the_success_path_ends_after_the_webhook_and_failure_ends_failed() -> None:
    states = to_state_machine_definition(ARNS)["States"]

    assert [states[name].get("Next") for name in STEP_NAMES[:-2]] == list(STEP_NAMES[1:-1])
    # settle (the last step before the webhook) goes to the Choice that decides whether there is one to deliver.
    assert states["settle"]["Next"] == "whether_deliver_webhook"
    assert states["deliver_webhook"]["End"] is True
    assert states[REFUND_STEP]["Next"] == FAILED_STATE and "Catch" not in states[REFUND_STEP]
    assert states[REFUND_STEP]["Retry"] and states[REFUND_STEP]["TimeoutSeconds"] == WORKFLOW.on_failure.timeout_sec
    assert states[FAILED_STATE]["Type"] == "Fail"


def test_webhook_delivery_is_skipped_by_a_choice_when_the_task_has_no_callback() -> None:
    states = to_state_machine_definition(ARNS)["States"]

    choice = states["whether_deliver_webhook"]
    assert choice["Type"] == "Choice"
    (rule,) = choice["Choices"]
    assert rule["Next"] == "deliver_webhook"
    tests = rule["And"]
    assert {"Variable": "$.notify", "IsPresent": True} in tests
    assert {"Variable": "$.notify", "IsString": True} in tests
    assert {"Not": {"Variable": "$.notify", "StringEquals": ""}} in tests
    assert choice["Default"] == DONE_STATE and states[DONE_STATE]["Type"] == "Succeed"


@pytest.mark.parametrize("callback", [None, "", 42])
def test_the_local_runner_skips_the_webhook_step_without_a_callback(callback: object) -> None:
    recorder = Recorder()
    state: State = {"task_id": "task-llm-1-abcdefgh"}
    if callback is not None:
        state["notify"] = callback

    result = LocalRunner(recorder.registry(), sleep=Sleeps()).run(state)

    assert result.succeeded
    assert recorder.calls == CALLS[:-1]
    assert "deliver_webhook" not in [attempt.step for attempt in result.history]


def test_every_task_invokes_lambda_in_the_partition_it_is_given() -> None:
    default = _task_states(to_state_machine_definition(ARNS))
    in_china = _task_states(to_state_machine_definition(ARNS, partition="aws-cn"))

    tasks = list(default)
    assert set(tasks) == {step.name for step in WORKFLOW.all_steps}
    for name in tasks:
        assert default[name]["Resource"] == "arn:aws:states:::lambda:invoke", name
        assert in_china[name]["Resource"] == "arn:aws-cn:states:::lambda:invoke", name
        assert {**in_china[name], "Resource": None} == {**default[name], "Resource": None}, name


def test_a_step_without_a_function_is_refused() -> None:
    with pytest.raises(ValueError, match="settle"):
        to_state_machine_definition({name: arn for name, arn in ARNS.items() if name != "settle"})


def test_a_lambda_handler_dispatches_the_payload_to_its_step() -> None:
    recorder = Recorder()

    out = dispatch_step(recorder.registry(), {"step": "meter", "state": {"task_id": "t"}})

    assert out == {"task_id": "t", "done": ["meter"]}
    with pytest.raises(ValueError):
        dispatch_step(recorder.registry(), {"step": "nope", "state": {}})


# -- the local runner ------------------------------------------------------------------------------
def test_the_success_path_runs_every_step_once_in_order() -> None:
    recorder = Recorder()
    sleeps = Sleeps()

    start = {"task_id": "task-llm-1-abcdefgh", "notify": "webhook"}
    result = LocalRunner(recorder.registry(), sleep=sleeps).run(start)

    assert result.succeeded and result.error is None
    assert recorder.calls == CALLS
    assert result.state == {**start, "chunks": TWO_CHUNKS, "done": DONE}
    assert sleeps.waits == []
    assert [(attempt.step, attempt.attempt, attempt.error) for attempt in result.history] == [
        (name, 1, None) for name in CALLS
    ]


def test_retries_follow_the_policy_then_the_refund_step_runs_exactly_once() -> None:
    # reserve retries RateLimitedError 5 times: 6 failures exhaust it.
    recorder = Recorder({"reserve": [RateLimitedError("contended") for _ in range(6)]})
    sleeps = Sleeps()

    result = LocalRunner(recorder.registry(), sleep=sleeps, rand=lambda: 0.5).run({"task_id": "t"})

    assert not result.succeeded
    assert recorder.calls == ["resolve_input", "meter", *["reserve"] * 6, REFUND_STEP]
    assert recorder.calls.count(REFUND_STEP) == 1
    assert result.error is not None and result.error["Error"] == "RateLimitedError"
    assert json.loads(result.error["Cause"]) == {"errorMessage": "contended", "errorType": "RateLimitedError"}
    # The refund step saw the state as the failing step received it, with the error at $.error.
    assert result.state["done"] == ["resolve_input", "meter", REFUND_STEP]
    assert result.state["error"] == result.error
    # Full jitter at rand = 0.5: half of 1, 2, 4, 8, 16 s (interval 1, backoff 2, capped at 20).
    assert sleeps.waits == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_a_transient_error_is_retried_and_the_workflow_succeeds() -> None:
    recorder = Recorder({"settle": [RateLimitedError("contended"), RateLimitedError("contended")]})
    sleeps = Sleeps()

    result = LocalRunner(recorder.registry(), sleep=sleeps, rand=lambda: 1.0).run({"task_id": "t"})

    assert result.succeeded
    assert recorder.calls.count("settle") == 3 and REFUND_STEP not in recorder.calls
    assert sleeps.waits == [1.0, 2.0]
    assert [attempt.attempt for attempt in result.history if attempt.step == "settle"] == [1, 2, 3]


@pytest.mark.parametrize(
    ("step", "error"),
    [
        ("reserve", BillingError("insufficient balance")),
        ("merge_chunks", ProviderError("upstream failed")),
        ("resolve_input", InvalidAudioError("not audio")),
        ("store_result", TaskTransitionError("already final")),
        ("meter", KeyError("a bug")),
    ],
)
def test_non_retryable_errors_go_straight_to_the_refund_step(step: str, error: Exception) -> None:
    recorder = Recorder({step: [error]})
    sleeps = Sleeps()

    result = LocalRunner(recorder.registry(), sleep=sleeps).run({"task_id": "t"})

    assert not result.succeeded and result.error is not None
    assert result.error["Error"] == type(error).__name__
    assert recorder.calls.count(step) == 1
    assert recorder.calls[-1] == REFUND_STEP and recorder.calls.count(REFUND_STEP) == 1
    assert sleeps.waits == []


def test_names_match_exactly_not_by_subclass() -> None:
    # InvalidAudioError is an InvalidRequestError, but only a policy naming InvalidAudioError retries it.
    flow = Workflow(
        steps=(Step("only", timeout_sec=5, retries=(Retrier(errors=("InvalidRequestError",), max_attempts=3),)),),
        on_failure=Step("refund", timeout_sec=5),
        timeout_sec=60,
    )
    calls: list[str] = []

    def only(state: State) -> State:
        calls.append("only")
        raise InvalidAudioError("not audio")

    result = LocalRunner({"only": only, "refund": lambda state: state}, workflow=flow, sleep=Sleeps()).run({})

    assert calls == ["only"] and not result.succeeded


def test_each_retrier_counts_its_own_attempts() -> None:
    flow = Workflow(
        steps=(
            Step(
                "flaky",
                timeout_sec=5,
                retries=(
                    Retrier(errors=("RateLimitedError",), max_attempts=1),
                    Retrier(errors=("ProviderError",), max_attempts=1),
                ),
            ),
        ),
        on_failure=Step("refund", timeout_sec=5),
        timeout_sec=60,
    )
    failures: list[Exception] = [RateLimitedError("a"), ProviderError("b")]

    def flaky(state: State) -> State:
        if failures:
            raise failures.pop(0)
        return {"ok": True}

    result = LocalRunner({"flaky": flaky, "refund": lambda state: state}, workflow=flow, sleep=Sleeps()).run({})

    assert result.succeeded and result.state == {"ok": True}


def test_jitter_stays_within_zero_and_the_capped_backoff() -> None:
    policy = Retrier(errors=("RateLimitedError",), interval_sec=2, max_attempts=6, backoff_rate=3.0, max_delay_sec=50)
    flow = Workflow(
        steps=(Step("s", timeout_sec=5, retries=(policy,)),), on_failure=Step("r", timeout_sec=5), timeout_sec=60
    )

    def always_contended(state: State) -> State:
        raise RateLimitedError("contended")

    caps = [2.0, 6.0, 18.0, 50.0, 50.0, 50.0]
    assert [policy.delay_cap(n) for n in range(1, 7)] == caps
    for seed in range(20):
        sleeps = Sleeps()
        rand = random.Random(seed).random
        LocalRunner({"s": always_contended, "r": lambda state: state}, workflow=flow, sleep=sleeps, rand=rand).run({})
        assert len(sleeps.waits) == 6
        assert all(0.0 <= wait <= cap for wait, cap in zip(sleeps.waits, caps, strict=True))
    extremes = Sleeps()
    LocalRunner({"s": always_contended, "r": lambda state: state}, workflow=flow, sleep=extremes, rand=lambda: 0.0).run(
        {}
    )
    assert extremes.waits == [0.0] * 6


def test_a_step_over_its_timeout_fails_as_states_timeout() -> None:
    release = threading.Event()
    flow = Workflow(
        steps=(Step("slow", timeout_sec=1, retries=(Retrier(errors=("States.Timeout",), max_attempts=1),)),),
        on_failure=Step("refund", timeout_sec=5),
        timeout_sec=60,
    )
    attempts: list[float] = []

    def slow(state: State) -> State:
        attempts.append(time.monotonic())
        release.wait(5)
        return state

    started = time.monotonic()
    result = LocalRunner({"slow": slow, "refund": lambda state: state}, workflow=flow, sleep=Sleeps()).run({})
    release.set()

    assert not result.succeeded and result.error is not None and result.error["Error"] == "States.Timeout"
    assert len(attempts) == 2  # the retrier matched States.Timeout once
    assert time.monotonic() - started < 4


def test_a_step_must_return_a_state_object() -> None:
    recorder = Recorder()
    registry = {**recorder.registry(), "meter": lambda state: None}

    result = LocalRunner(registry, sleep=Sleeps()).run({"task_id": "t"})  # type: ignore[arg-type]

    assert not result.succeeded and result.error is not None and result.error["Error"] == "TypeError"


def test_the_runner_needs_every_step() -> None:
    registry = Recorder().registry()
    del registry["settle"]

    with pytest.raises(ValueError, match="settle"):
        LocalRunner(registry)


def test_a_failing_refund_step_is_retried_then_raises() -> None:
    recorder = Recorder({"meter": [InvalidAudioError("x")], REFUND_STEP: [RateLimitedError("busy")] * 9})

    with pytest.raises(RateLimitedError):
        LocalRunner(recorder.registry(), sleep=Sleeps()).run({"task_id": "t"})

    assert recorder.calls.count(REFUND_STEP) == 9  # 1 + 8 retries


# -- idempotent steps ---------------------------------------------------------------------------
class MemoryMarkers:
    """An in-memory ``StepMarkers`` (the contract suite checks the real adapters)."""

    def __init__(self) -> None:
        self.claims: dict[tuple[str, str], int] = {}
        self.outputs: dict[tuple[str, str], dict[str, Any]] = {}
        self.lock = threading.Lock()

    def claim_step(self, task_id: str, step: str) -> bool:
        with self.lock:
            self.claims[(task_id, step)] = self.claims.get((task_id, step), 0) + 1
            return self.claims[(task_id, step)] == 1

    def record_step_output(self, task_id: str, step: str, output: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return self.outputs.setdefault((task_id, step), json.loads(json.dumps(output)))

    def get_step_output(self, task_id: str, step: str) -> dict[str, Any] | None:
        with self.lock:
            return self.outputs.get((task_id, step))


def _counting(name: str, counts: dict[str, int], fail_after: Callable[[], bool] = lambda: False) -> StepFn:
    def run(state: State) -> State:
        counts[name] = counts.get(name, 0) + 1
        output = {**state, name: counts[name]}
        if fail_after():
            raise RateLimitedError("the output was lost on the way back")
        return output

    return run


def test_a_retried_step_returns_its_recorded_output_instead_of_running_twice() -> None:
    markers = MemoryMarkers()
    counts: dict[str, int] = {}
    steps = steps_idempotent(markers, {"reserve": _counting("reserve", counts)})
    state = {"task_id": "task-llm-1-abcdefgh"}

    first = steps["reserve"](state)
    again = steps["reserve"](state)

    assert counts == {"reserve": 1}
    assert first == again == {"task_id": "task-llm-1-abcdefgh", "reserve": 1}


def test_a_re_driven_workflow_runs_no_finished_step_again() -> None:
    markers = MemoryMarkers()
    counts: dict[str, int] = {}
    broken = {"yes": True}
    registry = {name: _counting(name, counts) for name in (*STEP_NAMES, *TASK_NAMES)}
    registry["settle"] = _counting("settle", counts, fail_after=lambda: broken["yes"])
    flow = Workflow(
        steps=tuple(Step(step.name, timeout_sec=5) for step in WORKFLOW.steps),
        on_failure=Step(REFUND_STEP, timeout_sec=5),
        timeout_sec=60,
    )

    first = LocalRunner(steps_idempotent(markers, registry), workflow=flow, sleep=Sleeps()).run({"task_id": "t1"})
    broken["yes"] = False
    second = LocalRunner(steps_idempotent(markers, registry), workflow=flow, sleep=Sleeps()).run({"task_id": "t1"})

    assert not first.succeeded and second.succeeded
    assert counts["reserve"] == 1 and counts["merge_chunks"] == 1  # replayed, not charged or run twice
    assert counts["settle"] == 2  # its first attempt failed: no output was recorded
    assert markers.claims[("t1", "settle")] == 2


def test_step_idempotence_holds_under_the_runners_retries() -> None:
    markers = MemoryMarkers()
    counts: dict[str, int] = {}
    lost = [True]  # the step's work is done and recorded, but the attempt still fails (as a lost response)

    def reserve(state: State) -> State:
        counts["reserve"] = counts.get("reserve", 0) + 1
        return {**state, "reserved": 600}

    wrapped = steps_idempotent(markers, {"reserve": reserve})["reserve"]

    def flaky_transport(state: State) -> State:
        output = wrapped(state)
        if lost:
            lost.pop()
            raise RateLimitedError("response lost")
        return output

    registry = {**Recorder().registry(), "reserve": flaky_transport}
    result = LocalRunner(registry, sleep=Sleeps()).run({"task_id": "t1"})

    assert result.succeeded and result.state["reserved"] == 600
    assert counts["reserve"] == 1


def test_an_idempotent_step_needs_the_task_id() -> None:
    steps = steps_idempotent(MemoryMarkers(), {"meter": _counting("meter", {})})

    with pytest.raises(ValueError, match="task_id"):
        steps["meter"]({})


def test_errors_module_is_where_the_names_come_from() -> None:
    # Guard against renaming: the state machine already deployed matches these strings.
    for name in ("RateLimitedError", "BillingError", "ProviderError", "ProviderTimeoutError", "InvalidRequestError"):
        assert isinstance(getattr(errors, name), type)


# -- the Map state: long audio's chunks ---------------------------------------------------------------
def test_the_chunks_run_in_a_map_state_that_carries_references_only() -> None:
    definition = to_state_machine_definition(ARNS)
    (chunks,) = WORKFLOW.maps
    state = definition["States"][chunks.name]

    assert state["Type"] == "Map" and definition["States"]["plan_chunks"]["Next"] == chunks.name
    assert state["Next"] == "merge_chunks"
    assert state["ItemsPath"] == "$.chunks"
    # Each iteration gets the task id, the audio's key, the metered figures, the debit and its chunk: no options.
    assert state["ItemSelector"] == {
        "task_id.$": "$.task_id",
        "audio.$": "$.audio",
        "metered.$": "$.metered",
        "debit.$": "$.debit",
        "chunk.$": "$$.Map.Item.Value",
    }
    assert 1 <= state["MaxConcurrency"] <= 40  # bounded (an Inline Map runs at most 40 at once anyway)
    assert state["ResultPath"] is None  # the iterations' outputs are discarded; merge_chunks reads them by key
    assert state["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": REFUND_STEP}]
    processor = state["ItemProcessor"]
    assert processor["StartAt"] == CHUNK_STEP and set(processor["States"]) == {CHUNK_STEP}
    iteration = processor["States"][CHUNK_STEP]
    assert iteration["End"] is True and "Catch" not in iteration  # a failed chunk fails the Map, which refunds
    assert iteration["Parameters"] == {
        "FunctionName": ARNS[CHUNK_STEP],
        "Payload": {"step": CHUNK_STEP, "state.$": "$"},
    }
    assert iteration["TimeoutSeconds"] == chunks.iterator.timeout_sec
    assert {"Lambda.ServiceException", "Lambda.TooManyRequestsException"} <= set(iteration["Retry"][0]["ErrorEquals"])


def test_the_longest_task_fits_an_inline_map_and_more_chunks_would_take_a_distributed_one() -> None:
    from earshot.limits import MAX_TASK_AUDIO_SEC
    from earshot.workflow import (
        EVENTS_PER_ITERATION,
        EVENTS_PER_RETRY,
        EXECUTION_HISTORY_LIMIT,
        MAX_CHUNK_SEC,
        MAX_CHUNKS,
        map_mode,
    )

    (chunks,) = WORKFLOW.maps
    assert MAX_CHUNKS == math.ceil(MAX_TASK_AUDIO_SEC / (MAX_CHUNK_SEC / 4)) == 960
    assert MAX_CHUNKS * (EVENTS_PER_ITERATION + EVENTS_PER_RETRY) <= EXECUTION_HISTORY_LIMIT // 2
    assert chunks.mode == map_mode(MAX_CHUNKS) == "INLINE"
    state = to_state_machine_definition(ARNS)["States"][chunks.name]
    assert state["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}
    assert "ToleratedFailurePercentage" not in state  # not an Inline Map field: its first failed iteration fails it
    assert map_mode(1_500) == "DISTRIBUTED"


def test_a_distributed_map_runs_each_chunk_as_a_standard_child_execution_tolerating_no_failure() -> None:
    from dataclasses import replace

    (chunks,) = WORKFLOW.maps
    distributed = replace(chunks, mode="DISTRIBUTED")
    flow = replace(WORKFLOW, steps=tuple(distributed if s is chunks else s for s in WORKFLOW.steps))

    state = to_state_machine_definition(ARNS, workflow=flow)["States"][chunks.name]

    assert state["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert state["ToleratedFailurePercentage"] == 0
    assert state["MaxConcurrency"] == chunks.max_concurrency and state["ResultPath"] is None


def _chunk_flow(*, concurrency: int = 4, retries: tuple[Retrier, ...] = ()) -> Workflow:
    return Workflow(
        steps=(
            Step("plan", timeout_sec=5),
            MapStep(
                "chunks",
                iterator=Step("chunk", timeout_sec=5, retries=retries),
                items_field="chunks",
                item_field="chunk",
                max_concurrency=concurrency,
                carried=("task_id", "audio"),
            ),
            Step("merge", timeout_sec=5),
        ),
        on_failure=Step(REFUND_STEP, timeout_sec=5),
        timeout_sec=60,
    )


def test_the_local_runner_runs_the_chunks_on_a_pool_bounded_by_the_maps_concurrency() -> None:
    running, peak, seen = [0], [0], []
    lock = threading.Lock()

    def chunk(state: State) -> State:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            seen.append(state)
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return {"index": state["chunk"]["index"]}

    items = [{"index": i, "start": i * 60.0, "end": (i + 1) * 60.0} for i in range(12)]
    steps = {
        "plan": lambda state: {**state, "chunks": items},
        "chunk": chunk,
        "merge": lambda state: {**state, "merged": True},
        REFUND_STEP: lambda state: state,
    }
    start = {"task_id": "t", "audio": {"blob_key": "tasks/t/input"}, "options": "never carried"}

    result = LocalRunner(steps, workflow=_chunk_flow(concurrency=3), map_workers=8, sleep=Sleeps()).run(start)

    assert result.succeeded and result.state == {**start, "chunks": items, "merged": True}
    assert peak[0] == 3  # the Map's bound, not the pool's 8
    assert sorted(s["chunk"]["index"] for s in seen) == list(range(12))
    assert all(set(s) == {"task_id", "audio", "chunk"} for s in seen)  # references only, as the ItemSelector


def test_a_chunk_that_fails_after_its_retries_fails_the_task_once_and_stops_the_rest() -> None:
    calls: list[int] = []
    refunds: list[State] = []

    def chunk(state: State) -> State:
        index = state["chunk"]["index"]
        calls.append(index)
        if index == 2:
            raise ProviderError("the engine failed on chunk 2")
        if index == 5:
            raise RateLimitedError("throttled once")  # not retried by this Map: fails too (first failure wins)
        return {"index": index}

    def refund(state: dict[str, Any]) -> dict[str, Any]:
        refunds.append(state)
        return state

    items = [{"index": i} for i in range(40)]
    steps = {
        "plan": lambda state: {**state, "chunks": items},
        "chunk": chunk,
        "merge": lambda state: pytest.fail("merge must not run after a failed chunk"),
        REFUND_STEP: refund,
    }
    retry = Retrier(errors=("Lambda.ServiceException",), max_attempts=2)

    result = LocalRunner(
        steps, workflow=_chunk_flow(concurrency=2, retries=(retry,)), map_workers=2, sleep=Sleeps()
    ).run({"task_id": "t"})

    assert not result.succeeded and result.error is not None
    assert result.error["Error"] in {"ProviderError", "RateLimitedError"}
    assert len(refunds) == 1 and refunds[0]["chunks"] == items  # the refund step sees the planned chunks
    assert calls.count(2) == 1  # ProviderError is not retried
    assert len(calls) < len(items)  # the chunks not started when it failed never run


def test_a_chunk_is_retried_on_a_lambda_service_error_and_the_map_succeeds() -> None:
    attempts: dict[int, int] = {}

    class ServiceException(Exception):
        pass

    ServiceException.__name__ = "Lambda.ServiceException"

    def chunk(state: State) -> State:
        index = state["chunk"]["index"]
        attempts[index] = attempts.get(index, 0) + 1
        if index == 3 and attempts[index] == 1:
            raise ServiceException("invoke failed")
        return {"index": index}

    steps = {
        "plan": lambda state: {**state, "chunks": [{"index": i} for i in range(6)]},
        "chunk": chunk,
        "merge": lambda state: {**state, "merged": True},
        REFUND_STEP: lambda state: pytest.fail("nothing to refund"),
    }
    retry = Retrier(errors=("Lambda.ServiceException",), max_attempts=2)
    sleeps = Sleeps()

    result = LocalRunner(steps, workflow=_chunk_flow(retries=(retry,)), sleep=sleeps, rand=lambda: 0.0).run(
        {"task_id": "t"}
    )

    assert result.succeeded and result.state["merged"] is True
    assert attempts == {0: 1, 1: 1, 2: 1, 3: 2, 4: 1, 5: 1}
    assert [(a.step, a.attempt, a.error) for a in result.history if a.error] == [
        ("chunk", 1, "Lambda.ServiceException")
    ]


def test_each_chunk_is_idempotent_on_its_own_so_a_re_driven_map_runs_only_the_unfinished_ones() -> None:
    markers = MemoryMarkers()
    ran: list[int] = []
    broken = {4}

    def chunk(state: State) -> State:
        index = state["chunk"]["index"]
        ran.append(index)
        if index in broken:
            raise ProviderError("chunk 4 failed")
        return {"index": index}

    registry = {
        "plan": lambda state: {**state, "chunks": [{"index": i} for i in range(6)]},
        "chunk": chunk,
        "merge": lambda state: {**state, "merged": True},
        REFUND_STEP: lambda state: state,
    }
    flow = _chunk_flow(concurrency=1)
    steps = steps_idempotent(markers, registry, workflow=flow)

    first = LocalRunner(steps, workflow=flow, sleep=Sleeps()).run({"task_id": "t1"})
    broken.clear()
    second = LocalRunner(steps, workflow=flow, sleep=Sleeps()).run({"task_id": "t1"})

    assert not first.succeeded and second.succeeded
    assert ran == [0, 1, 2, 3, 4, 4, 5]  # 0-3 replayed from their markers, 4 run again, 5 for the first time
    assert ("t1", "chunk#4") in markers.outputs and ("t1", "chunk") not in markers.outputs
