"""The workflow's steps: plain functions of the JSON state, shared by Step Functions and the local runner.

State: ``task_id``, ``account_id``, ``key_id``, ``kind``, ``model``, ``options``, ``source`` (an audio
``blob_key`` or a ``url``), ``callback_url``; the steps add ``metered``, ``debit``, ``result``.
Every step is safe to retry: money moves keyed by the task id, and ``steps_idempotent`` replays a
step that already succeeded.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from earshot import errors
from earshot.audio.budget import decode_budget
from earshot.billing import billable_minutes, cost_micro_usd, duration_ms
from earshot.jobs.kinds import prepare, response_result
from earshot.limits import MAX_TASK_AUDIO_SEC
from earshot.metering import MeteredAudio, meter_duration
from earshot.observability import logger
from earshot.ports import Charge, LedgerEntry
from earshot.runtime import Runtime
from earshot.services.account_gate import ensure_may_start
from earshot.services.audio_input import staged_blob
from earshot.services.metered import Metered
from earshot.workflow import WORKFLOW

State = dict[str, Any]
# Results above this size live in the blob store; the task keeps a key to them.
INLINE_RESULT_BYTES = 256 * 1024
RESULT_BLOB = "tasks/{task_id}/result.json"


def _step_deadline(name: str) -> float:
    return float(next(step.timeout_sec for step in WORKFLOW.all_steps if step.name == name)) - 5.0


def _progress(runtime: Runtime, state: State, progress: int, **data: Any) -> None:
    task_id = state["task_id"]
    runtime.tasks.update_task(task_id, status="processing", progress=progress)
    runtime.tasks.append_event(task_id, type="progress", data={"status": "processing", "progress": progress, **data})


def _staged_input(runtime: Runtime, state: State) -> Any:
    """The task's audio streamed to /tmp (up to an upload's 500 MiB, never whole in memory)."""
    return staged_blob(runtime.blobs, state["source"]["blob_key"], state["source"].get("filename", ""))


def resolve_input(runtime: Runtime, state: State) -> State:
    """Make the audio a blob: fetch a URL through the SSRF-safe fetcher, or keep the stored upload."""
    try:  # queued work obeys the account as it is now
        ensure_may_start(runtime, state["account_id"], state.get("key_id"))
    except errors.EarshotError:
        _progress(runtime, state, 0)  # out of pending, so that the task can end as failed
        raise
    source = dict(state["source"])
    if "url" in source:
        from earshot.services.audio_source import from_url

        fetched = from_url(runtime, source["url"], deadline_sec=_step_deadline("resolve_input"))
        key = f"tasks/{state['task_id']}/input"
        runtime.blobs.put(key, fetched.data)
        source = {"blob_key": key, "filename": fetched.filename, "delete_after": True}
    _progress(runtime, state, 10)
    return {**state, "source": source}


def meter(runtime: Runtime, state: State) -> State:
    with _staged_input(runtime, state) as path:
        metered = meter_duration(path, ffprobe=runtime.ffprobe)
    _progress(runtime, state, 25, duration_sec=round(metered.seconds, 3))
    return {**state, "metered": metered.__dict__}


def _billed(state: State) -> tuple[float, str]:
    seconds = float(state["metered"]["seconds"])
    hint = state["options"].get("duration_sec")
    if isinstance(hint, (int, float)) and hint > seconds:
        return float(hint), "caller_hint"
    return seconds, "measured"


def reserve(runtime: Runtime, state: State) -> State:
    """Debit the price now (keyed by the task id, so a retry charges once); 402 fails the task unpaid."""
    # Again right before the charge (audio switch, key); the debit itself refuses an insufficient balance.
    ensure_may_start(runtime, state["account_id"], state.get("key_id"), check_balance=False)
    prepared = prepare(runtime, state["kind"], state["options"], deadline_sec=_step_deadline("run_engine"))
    seconds, _ = _billed(state)
    max_seconds = prepared.plan.max_seconds
    if max_seconds is not None and seconds > max_seconds:
        raise errors.InvalidAudioError(f"the audio is {seconds:.0f} s long; at most {max_seconds:.0f} s")
    measured = float(state["metered"]["seconds"])
    if measured > MAX_TASK_AUDIO_SEC:  # the documented task limit, before any debit
        raise errors.InvalidAudioError(
            f"the audio is {measured:.0f} s long; a task takes at most {MAX_TASK_AUDIO_SEC / 3600:.0f} hours of audio"
        )
    # Nor is anything debited for audio the engine step cannot finish in its time (it would run 15 minutes, time
    # out and be refunded): the same prediction as a synchronous request's.
    from earshot.services.sync_budget import needed_sec

    model = prepared.plan.model
    workers, max_chunk = runtime.engine_parallelism(model)
    needed = needed_sec(model, measured, workers=workers, max_chunk_sec=max_chunk)
    budget = _step_deadline("run_engine")
    if needed > budget:
        raise errors.InvalidAudioError(
            f"the audio is {measured:.0f} s long and {model.sku} would need about {needed:.0f} s for it; a task's "
            f"engine step has {budget:.0f} s. Split the recording, or choose a faster model"
        )
    entry = runtime.store.debit(
        Charge(
            request_id=state["task_id"],
            account_id=state["account_id"],
            amount_micro_usd=cost_micro_usd(model, seconds),
            model=model.sku,
            duration_ms=duration_ms(seconds),
            billable_minutes=billable_minutes(seconds),
            description=f"task {state['kind']} {seconds:.3f}s",
        )
    )
    _progress(runtime, state, 35)
    return {**state, "debit": entry.model_dump()}


def run_engine(runtime: Runtime, state: State) -> State:
    prepared = prepare(runtime, state["kind"], state["options"], deadline_sec=_step_deadline("run_engine"))
    metered = MeteredAudio(**state["metered"])
    seconds, source = _billed(state)
    with _staged_input(runtime, state) as path:
        try:
            with decode_budget(metered.seconds):  # the engine never hears more than was metered
                result = prepared.plan.work(path, metered)
        except errors.EarshotError:
            raise
        except Exception as exc:  # an engine bug is a provider failure: the catch refunds it
            logger.exception("engine failed in a task", extra={"task_id": state["task_id"]})
            raise errors.EngineError(f"the {prepared.plan.model.sku} engine failed on this audio") from exc
    outcome = Metered(
        result=result,
        model=prepared.plan.model,
        metered=metered,
        billed_seconds=seconds,
        duration_source=source,
        debit=LedgerEntry(**state["debit"]),
    )
    # The result goes to the blob store, never into the workflow state: Step Functions caps state at 256 KiB.
    key = RESULT_BLOB.format(task_id=state["task_id"])
    runtime.blobs.put(
        key, json.dumps(response_result(prepared.render(outcome))).encode(), content_type="application/json"
    )
    _progress(runtime, state, 80)
    return {**state, "result_key": key}


def settle(runtime: Runtime, state: State) -> State:
    """Capture the reservation. Prices follow the metered duration, so the reservation is exact: nothing to release."""
    captured = -int(state["debit"]["amount_micro_usd"])
    runtime.tasks.append_event(state["task_id"], type="settled", data={"captured_micro_usd": captured, "released": 0})
    return state


def store_result(runtime: Runtime, state: State) -> State:
    task_id = state["task_id"]
    key = state["result_key"]
    encoded = runtime.blobs.get(key)
    result = json.loads(encoded)
    if len(encoded) > INLINE_RESULT_BYTES:
        runtime.tasks.update_task(task_id, status="completed", result_blob_key=key)
    else:  # small results live in the task record itself
        runtime.tasks.update_task(task_id, status="completed", results=[result])
        runtime.blobs.delete(key)
    if state["kind"] == "llm" and isinstance(result, dict):
        from earshot.api.understanding import completion_chunk

        runtime.tasks.append_event(task_id, type="chunk", data=completion_chunk(result))
    runtime.tasks.append_event(task_id, type="status", data={"status": "completed", "progress": 100})
    if state["source"].get("delete_after") and not state["options"].get("retain"):
        runtime.blobs.delete(state["source"]["blob_key"])
    return state


def _deliver(runtime: Runtime, state: State) -> None:
    url = state.get("callback_url")
    if not url:
        return
    from earshot.api.tasks import task_document
    from earshot.webhooks import deliver, generate_secret

    task = runtime.tasks.get_task(state["task_id"])
    if task is None:
        return
    secret = runtime.store.get_webhook_secret(state["account_id"])
    if secret is None:
        secret = generate_secret()
        runtime.store.set_webhook_secret(state["account_id"], secret)
    body = json.dumps(task_document(runtime, task)).encode()
    delivery = deliver(
        url,
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
    _deliver(runtime, state)
    return state


def _error_of(state: State) -> dict[str, Any]:
    caught = state.get("error") or {}
    name = str(caught.get("Error", "InternalError"))
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
    """Give back what was taken and fail the task; a task that already completed keeps its result."""
    task_id = state["task_id"]
    task = runtime.tasks.get_task(task_id)
    if task is not None and task.status == "completed":
        return state  # only the webhook failed after the result was stored: nothing to refund
    runtime.store.refund(request_id=task_id, reason="refund: task failed")
    error = _error_of(state)
    if task is not None and task.status != "failed":
        runtime.tasks.update_task(task_id, status="failed", error=error)
        runtime.tasks.append_event(task_id, type="status", data={"status": "failed", "error": error})
    if state["source"].get("delete_after") and "blob_key" in state["source"]:
        runtime.blobs.delete(state["source"]["blob_key"])
    try:
        _deliver(runtime, state)
    except errors.EarshotError:
        logger.warning("webhook for a failed task not delivered", extra={"task_id": task_id})
    return state


STEPS: dict[str, Any] = {
    "resolve_input": resolve_input,
    "meter": meter,
    "reserve": reserve,
    "run_engine": run_engine,
    "settle": settle,
    "store_result": store_result,
    "deliver_webhook": deliver_webhook,
    "refund_and_fail": refund_and_fail,
}


def registry(runtime: Runtime) -> dict[str, Any]:
    """The steps bound to ``runtime``, each made idempotent per (task, step) with its step markers.

    Binding the runtime (rather than looking it up per step) keeps a running task on the stores it
    started with.
    """
    from earshot.workflow import steps_idempotent

    bound = {name: functools.partial(fn, runtime) for name, fn in STEPS.items()}
    wrapped = steps_idempotent(runtime.step_markers, {k: v for k, v in bound.items() if k != "refund_and_fail"})
    wrapped["refund_and_fail"] = bound["refund_and_fail"]  # decides from the task's own state, safe to run again
    return wrapped
