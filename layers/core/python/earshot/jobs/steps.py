"""The workflow's steps: plain functions of the JSON state, shared by Step Functions and the local runner.

The state holds references only: ``task_id``, then the keys and figures the steps add (``audio``: the
input's blob key; ``metered``; ``debit``; ``chunks``: each chunk's index and offsets; ``result_key``). What the
caller sent (options, prompts, schemas, the audio URL, the callback URL) lives in the task record, never in the
state, and so do the chunks' audio and results (blobs keyed by task and chunk index).

The engine runs in three steps, Step Functions' Map state in the middle: ``plan_chunks`` cuts audio longer than a
chunk at silences (voice activity detection) into chunk blobs, keeping only the chunks with speech (audio that
does not fan out, or is short, is one ``whole`` chunk); ``run_chunk`` runs the engine on one chunk (a whole chunk:
on the audio, rendered as the task's result); ``merge_chunks`` joins the chunks' transcripts with exact offsets and
one language, finishes them over the whole recording (diarization), and renders the result. The debit was taken
once, by ``reserve``, before the Map; a chunk that fails fails the task, and ``refund_and_fail`` returns exactly it.

Each step is one stage of the charged-run pipeline (``earshot.services.charged_run``), the same
functions the sync path runs. Every step is safe to retry: money moves keyed by the task id, and
``steps_idempotent`` replays a step that already succeeded.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from earshot import errors
from earshot.blob_layout import task_chunk_key, task_chunk_result_key, task_input_key, task_result_key
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
    ChunkedWork,
    Pricing,
    capture,
    check_limits,
    hold,
    meter_audio,
    price,
    record_run_metrics,
    run_engine_call,
    run_plan,
)
from earshot.services.task_failure import fail_task
from earshot.uploaded import upload_bytes
from earshot.workflow import CHUNK_STEP, REFUND_STEP, WORKFLOW, steps_idempotent

if TYPE_CHECKING:
    from earshot.engines.base import Segment, Transcript

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
    return prepare(runtime, task.kind, task.request.get("options", {}), deadline_sec=_step_deadline(CHUNK_STEP))


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
        runtime.blobs.put(key, upload_bytes(fetched.data))
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
    check_limits(runtime, prepared.plan, metered, path="task", time_left_sec=_step_deadline(CHUNK_STEP))
    entry = hold(runtime, _pricing(prepared, task, metered).charge)
    _progress(runtime, state, 35)
    return {**state, "debit": entry.model_dump()}


def plan_chunks(runtime: Runtime, state: State) -> State:
    """Cut long audio at silences into chunk blobs; the state gets each chunk's index and offsets only.

    Audio that does not fan out (a model other than an embedded recogniser, or no longer than one chunk) is one
    ``whole`` chunk. Chunks without speech are not run (their transcript would be empty)."""
    task = _task(runtime, state)
    prepared = _prepared(runtime, task)
    metered = MeteredAudio(**state["metered"])
    chunked = prepared.plan.chunked
    if chunked is None or metered.seconds <= chunked.max_chunk_sec:
        whole = {"index": 0, "start": 0.0, "end": round(metered.seconds, 3), "whole": True}
        return {**state, "chunks": [whole]}
    import wave

    from earshot.audio.budget import decode_budget
    from earshot.audio.decode import SAMPLE_RATE, decode_to_pcm16k
    from earshot.engines.fanout import plan_chunks as cut
    from earshot.engines.fanout import vad_speech_regions

    with _staged_input(runtime, state) as path, decode_budget(metered.seconds):
        pcm = decode_to_pcm16k(path)
        plan = cut(vad_speech_regions(path, pcm), len(pcm) / SAMPLE_RATE, max_chunk_sec=chunked.max_chunk_sec)
    for chunk in plan.chunks:
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as buffer:
            with wave.open(buffer, "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(SAMPLE_RATE)
                out.writeframes(pcm[round(chunk.start * SAMPLE_RATE) : round(chunk.end * SAMPLE_RATE)].tobytes())
            buffer.seek(0)
            runtime.blobs.put(task_chunk_key(task.id, chunk.index), buffer.read(), content_type="audio/wav")
    _progress(runtime, state, 40, chunks=len(plan.chunks))
    chunks = [{"index": c.index, "start": c.start, "end": c.end} for c in plan.chunks]
    return {**state, "chunks": chunks}


def _chunked(prepared: Prepared) -> ChunkedWork[Any]:
    chunked = prepared.plan.chunked
    if chunked is None:  # the plan changed between plan_chunks and now (a catalog edit): fail, refunded
        raise errors.EngineError("this task's model no longer runs in chunks")
    return chunked


def run_chunk(runtime: Runtime, state: State) -> State:
    """One iteration of the Map: the engine on one chunk, its result stored by key. A ``whole`` chunk is the audio
    itself, rendered as the task's result."""
    chunk = state["chunk"]
    task = _task(runtime, state)
    prepared = _prepared(runtime, task)
    if chunk.get("whole"):
        _run_whole(runtime, state, task, prepared)
        return {"index": chunk["index"]}
    chunked = _chunked(prepared)
    index, start = int(chunk["index"]), float(chunk["start"])
    transcript, engine_ms = _transcribe_chunk(runtime, task, prepared, chunked, chunk, chunked.language, start)
    body = {"transcript": transcript.model_dump(mode="json"), "engine_ms": engine_ms}
    runtime.blobs.put(task_chunk_result_key(task.id, index), json.dumps(body).encode(), content_type="application/json")
    return {"index": index}


def _transcribe_chunk(
    runtime: Runtime,
    task: Task,
    prepared: Prepared,
    chunked: ChunkedWork[Any],
    chunk: dict[str, Any],
    language: str | None,
    offset: float,
) -> tuple[Transcript, float]:
    index = int(chunk["index"])
    seconds = float(chunk["end"]) - float(chunk["start"])
    listener = _partial_events(runtime, task.id, offset=offset)
    with staged_blob(runtime.blobs, task_chunk_key(task.id, index), "chunk.wav") as path, segment_listener(listener):
        return run_engine_call(
            prepared.plan.model, lambda: chunked.transcribe(path, language), budget_sec=seconds + 0.05
        )


def _run_whole(runtime: Runtime, state: State, task: Task, prepared: Prepared) -> None:
    metered = MeteredAudio(**state["metered"])
    pricing = _pricing(prepared, task, metered)
    with _staged_input(runtime, state) as path, segment_listener(_partial_events(runtime, state["task_id"])):
        result, engine_ms = run_plan(prepared.plan, path, metered)
    record_run_metrics(prepared.plan, pricing, metered, engine_ms)
    _store_rendered(runtime, state, task, prepared, result)


def _store_rendered(runtime: Runtime, state: State, task: Task, prepared: Prepared, result: Any) -> str:
    metered = MeteredAudio(**state["metered"])
    pricing = _pricing(prepared, task, metered)
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
    return key


def merge_chunks(runtime: Runtime, state: State) -> State:
    """Join the chunks' transcripts: offsets exact (each chunk's start is a sample position of the decoded audio),
    one language (the caller's, else the speech-weighted majority, with the chunks that heard another transcribed
    again in it), finished over the whole recording, rendered as the task's result."""
    chunks = state.get("chunks") or []
    task = _task(runtime, state)
    if len(chunks) == 1 and chunks[0].get("whole"):
        _progress(runtime, state, 80)
        return {**state, "result_key": task_result_key(task.id)}
    from earshot.engines.base import Transcript
    from earshot.engines.fanout import Chunk, decide_language, merge_transcripts

    prepared = _prepared(runtime, task)
    chunked = _chunked(prepared)
    metered = MeteredAudio(**state["metered"])
    parts: list[tuple[Chunk, Transcript]] = []
    engine_ms = 0.0
    for item in chunks:
        body = json.loads(runtime.blobs.get(task_chunk_result_key(task.id, int(item["index"]))))
        span = Chunk(index=int(item["index"]), start=float(item["start"]), end=float(item["end"]), speech_sec=0.0)
        parts.append((span, Transcript.model_validate(body["transcript"])))
        engine_ms += float(body.get("engine_ms", 0.0))
    language = chunked.language or decide_language(parts)
    if chunked.language is None and language:
        for position, (span, transcript) in enumerate(parts):
            if transcript.language != language:  # a stray chunk: heard again in the recording's language
                item = chunks[position]
                again, ms = _transcribe_chunk(runtime, task, prepared, chunked, item, language, span.start)
                parts[position] = (span, again)
                engine_ms += ms
    merged = merge_transcripts(parts, language=language or (chunked.language or ""))
    with _staged_input(runtime, state) as path:
        result, finish_ms = run_engine_call(
            prepared.plan.model, lambda: chunked.finish(path, merged), budget_sec=metered.seconds
        )
    record_run_metrics(prepared.plan, _pricing(prepared, task, metered), metered, engine_ms + finish_ms)
    key = _store_rendered(runtime, state, task, prepared, result)
    _delete_chunks(runtime, task.id, chunks)
    _progress(runtime, state, 80)
    return {**state, "result_key": key}


def _delete_chunks(runtime: Runtime, task_id: str, chunks: list[dict[str, Any]]) -> None:
    for item in chunks:
        if not item.get("whole"):
            runtime.blobs.delete(task_chunk_key(task_id, int(item["index"])))
            runtime.blobs.delete(task_chunk_result_key(task_id, int(item["index"])))


def _partial_events(runtime: Runtime, task_id: str, *, offset: float = 0.0) -> Callable[[Segment], None]:
    """Each segment an engine decodes becomes a ``partial`` event (followers of /events see text early); a chunk's
    segments are placed on the recording's timeline by the chunk's ``offset``."""

    def append(segment: Segment) -> None:
        start, end = round(segment.start + offset, 3), round(segment.end + offset, 3)
        data = {"segment": {"id": segment.id, "start": start, "end": end, "text": segment.text}}
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
    _delete_chunks(runtime, task_id, list(state.get("chunks") or []))
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
    "plan_chunks": plan_chunks,
    CHUNK_STEP: run_chunk,
    "merge_chunks": merge_chunks,
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
