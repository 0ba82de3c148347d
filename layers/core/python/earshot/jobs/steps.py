"""The workflow's steps: plain functions of the JSON state, shared by Step Functions and the local runner.

The state holds references only: ``task_id``, then the keys and figures the steps add (``audio``: the
input's blob key; ``metered``; ``debit``; ``result_key``). What the caller sent (options, prompts,
schemas, the audio URL, the callback URL) lives in the task record, never in the state.

Each step is one stage of the charged-run pipeline (``earshot.services.charged_run``), the same
functions the sync path runs. Every step is safe to retry: money moves keyed by the task id, and
``steps_idempotent`` replays a step that already succeeded.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from earshot import errors
from earshot.blob_layout import task_input_key, task_result_key
from earshot.kinds import Prepared, prepare
from earshot.kinds.understanding import completion_chunk
from earshot.live import segment_listener
from earshot.metering import MeteredAudio
from earshot.observability import logger
from earshot.ports import LedgerEntry, Task
from earshot.runtime import Runtime
from earshot.services.account_gate import ensure_may_start
from earshot.services.audio_input import staged_blob
from earshot.services.audio_source import AudioReference, resolve_audio
from earshot.services.charged_run import (
    ChargedRun,
    Pricing,
    capture,
    check_limits,
    hold,
    meter_audio,
    price,
    record_run_metrics,
    run_plan,
)
from earshot.services.task_failure import fail_task
from earshot.workflow import REFUND_STEP, WORKFLOW, steps_idempotent

if TYPE_CHECKING:
    from earshot.engines.base import Segment

State = dict[str, Any]
# Results above this size live in the blob store; the task keeps a key to them.
INLINE_RESULT_BYTES = 256 * 1024


def _step_deadline(name: str) -> float:
    return float(next(step.timeout_sec for step in WORKFLOW.all_steps if step.name == name)) - 5.0


def _task(runtime: Runtime, state: State) -> Task:
    task = runtime.tasks.get_task(state["task_id"])
    if task is None:
        raise errors.NotFoundError(f"no task {state['task_id']}", param="task_id")
    return task


def _progress(runtime: Runtime, state: State, progress: int, **data: Any) -> None:
    task_id = state["task_id"]
    runtime.tasks.update_task(task_id, status="processing", progress=progress)
    runtime.tasks.append_event(task_id, type="progress", data={"status": "processing", "progress": progress, **data})


def _prepared(runtime: Runtime, task: Task) -> Prepared:
    return prepare(runtime, task.kind, task.request.get("options", {}), deadline_sec=_step_deadline("run_engine"))


def _pricing(prepared: Prepared, task: Task, metered: MeteredAudio) -> Pricing:
    return price(
        prepared.plan, metered, request_id=task.id, account_id=task.account_id, description=f"task {task.kind}"
    )


def resolve_input(runtime: Runtime, state: State) -> State:
    """Make the audio a blob: fetch a URL through the SSRF-safe fetcher, or keep the stored upload."""
    task = _task(runtime, state)
    ensure_may_start(runtime, task.account_id, task.request.get("key_id"))  # queued work obeys the account now
    source = dict(task.request.get("source") or {})
    filename = str(task.request.get("filename") or "")
    if "blob_key" in source:
        audio = {"blob_key": source["blob_key"], "filename": filename, "delete_after": source.get("delete_after", True)}
    else:
        fetched = resolve_audio(
            runtime, AudioReference(url=source.get("url")), principal=None, deadline_sec=_step_deadline("resolve_input")
        )
        key = task_input_key(task.id)
        runtime.blobs.put(key, fetched.data)
        audio = {"blob_key": key, "filename": fetched.filename, "delete_after": True}
    _progress(runtime, state, 10)
    return {**state, "audio": audio}


def _staged_input(runtime: Runtime, state: State) -> Any:
    """The task's audio streamed to /tmp (up to an upload's 500 MiB, never whole in memory)."""
    return staged_blob(runtime.blobs, state["audio"]["blob_key"], state["audio"].get("filename", ""))


def meter(runtime: Runtime, state: State) -> State:
    with _staged_input(runtime, state) as path:
        metered = meter_audio(runtime, path)
    _progress(runtime, state, 25, duration_sec=round(metered.seconds, 3))
    return {**state, "metered": metered.__dict__}


def reserve(runtime: Runtime, state: State) -> State:
    """Check the limits and hold the price (keyed by the task id, so a retry charges once); 402 fails it unpaid."""
    task = _task(runtime, state)
    # Again right before the charge (audio switch, key); the hold itself refuses an insufficient balance.
    ensure_may_start(runtime, task.account_id, task.request.get("key_id"), check_balance=False)
    prepared = _prepared(runtime, task)
    metered = MeteredAudio(**state["metered"])
    check_limits(runtime, prepared.plan, metered, path="task", time_left_sec=_step_deadline("run_engine"))
    entry = hold(runtime, _pricing(prepared, task, metered).charge)
    _progress(runtime, state, 35)
    return {**state, "debit": entry.model_dump()}


def run_engine(runtime: Runtime, state: State) -> State:
    task = _task(runtime, state)
    prepared = _prepared(runtime, task)
    metered = MeteredAudio(**state["metered"])
    pricing = _pricing(prepared, task, metered)
    with _staged_input(runtime, state) as path, segment_listener(_partial_events(runtime, state["task_id"])):
        result, engine_ms = run_plan(prepared.plan, path, metered)
    record_run_metrics(prepared.plan, pricing, metered, engine_ms)
    rendered = prepared.render(
        ChargedRun(
            result=result,
            model=prepared.plan.model,
            metered=metered,
            billed_seconds=pricing.billed_seconds,
            duration_source=pricing.duration_source,
            debit=LedgerEntry(**state["debit"]),
        )
    )
    # The result goes to the blob store, never into the workflow state: Step Functions caps state at 256 KiB.
    key = task_result_key(task.id)
    runtime.blobs.put(key, json.dumps(rendered.body).encode(), content_type="application/json")
    _progress(runtime, state, 80)
    return {**state, "result_key": key}


def _partial_events(runtime: Runtime, task_id: str) -> Callable[[Segment], None]:
    """Each segment an engine decodes becomes a ``partial`` event (followers of /events see text early)."""

    def append(segment: Segment) -> None:
        data = {"segment": {"id": segment.id, "start": segment.start, "end": segment.end, "text": segment.text}}
        runtime.tasks.append_event(task_id, type="partial", data=data)

    return append


def store_result(runtime: Runtime, state: State) -> State:
    """Complete the task with its result (in the record, or by key when large). Safe to run again."""
    task = _task(runtime, state)
    if task.status == "completed":
        return state
    key = state["result_key"]
    encoded = runtime.blobs.get(key)
    result = json.loads(encoded)
    if len(encoded) > INLINE_RESULT_BYTES:
        runtime.tasks.update_task(task.id, status="completed", result_blob_key=key)
    else:  # small results live in the task record itself
        runtime.tasks.update_task(task.id, status="completed", results=[result])
        runtime.blobs.delete(key)
    if task.kind == "llm" and isinstance(result, dict):
        runtime.tasks.append_event(task.id, type="chunk", data=completion_chunk(result))
    runtime.tasks.append_event(task.id, type="status", data={"status": "completed", "progress": 100})
    if state["audio"].get("delete_after") and not task.request.get("options", {}).get("retain"):
        runtime.blobs.delete(state["audio"]["blob_key"])
    return state


def settle(runtime: Runtime, state: State) -> State:
    """The task is completed, its result delivered to the task record: the hold on its price becomes final."""
    capture(runtime, state["task_id"])
    captured = -int(state["debit"]["amount_micro_usd"])
    runtime.tasks.append_event(state["task_id"], type="settled", data={"captured_micro_usd": captured, "released": 0})
    return state


def _deliver(runtime: Runtime, task_id: str) -> None:
    from earshot.services.task_views import task_document
    from earshot.webhooks import deliver, generate_secret

    task = runtime.tasks.get_task(task_id)
    if task is None or not task.callback_url:
        return
    secret = runtime.store.get_webhook_secret(task.account_id)
    if secret is None:
        secret = generate_secret()
        runtime.store.set_webhook_secret(task.account_id, secret)
    body = json.dumps(task_document(runtime, task)).encode()
    delivery = deliver(
        task.callback_url,
        body,
        secret,
        msg_id=f"msg_{task.id}_{task.status}",
        allow_loopback=runtime.settings.allow_loopback_urls,
        deadline_sec=_step_deadline("deliver_webhook"),
    )
    runtime.tasks.append_event(
        task.id, type="webhook", data={"delivered": delivery.delivered, "attempts": delivery.attempts}
    )


def deliver_webhook(runtime: Runtime, state: State) -> State:
    _deliver(runtime, state["task_id"])
    return state


def _error_name(state: State) -> str:
    return str((state.get("error") or {}).get("Error", "InternalError"))


def _error_of(state: State) -> dict[str, Any]:
    caught = state.get("error") or {}
    name = _error_name(state)
    message = "the task failed"
    try:
        cause = json.loads(caught.get("Cause") or "{}")
        message = str(cause.get("errorMessage") or cause.get("message") or message)
    except (TypeError, ValueError):
        message = str(caught.get("Cause") or message)
    error_class = getattr(errors, name, None)
    if isinstance(error_class, type) and issubclass(error_class, errors.EarshotError):
        return {"code": error_class.code, "type": error_class.type, "message": message}
    if name == "States.Timeout":
        return {"code": "provider_timeout", "type": "api_error", "message": "the task ran out of time"}
    return {"code": "internal_error", "type": "api_error", "message": "the task failed; it has been logged"}


def refund_and_fail(runtime: Runtime, state: State) -> State:
    """Fail the task and give back what was taken, from any step; a task that already completed keeps its result."""
    task_id = state["task_id"]
    if not fail_task(runtime, task_id, _error_of(state), error_name=_error_name(state)):
        return state
    task = runtime.tasks.get_task(task_id)
    audio = state.get("audio") or (task.request.get("source") if task else None) or {}
    if audio.get("delete_after") and "blob_key" in audio:
        runtime.blobs.delete(audio["blob_key"])
    try:
        _deliver(runtime, task_id)
    except errors.EarshotError:
        logger.warning("webhook for a failed task not delivered", extra={"task_id": task_id})
    return state


STEPS: dict[str, Any] = {
    "resolve_input": resolve_input,
    "meter": meter,
    "reserve": reserve,
    "run_engine": run_engine,
    "store_result": store_result,
    "settle": settle,
    "deliver_webhook": deliver_webhook,
    REFUND_STEP: refund_and_fail,
}


def registry(runtime: Runtime) -> dict[str, Any]:
    """The steps bound to ``runtime``, each made idempotent per (task, step) with its step markers.

    Binding the runtime (rather than looking it up per step) keeps a running task on the stores it
    started with.
    """
    bound = {name: functools.partial(fn, runtime) for name, fn in STEPS.items()}
    wrapped = steps_idempotent(runtime.step_markers, {k: v for k, v in bound.items() if k != REFUND_STEP})
    wrapped[REFUND_STEP] = bound[REFUND_STEP]  # decides from the task's own state, safe to run again
    return wrapped
