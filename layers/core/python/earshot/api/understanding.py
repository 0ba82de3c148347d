"""``POST /v1/audio/understanding``: the seed-002 task API; ``results[0]`` is an OpenAI ChatCompletion."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.api.processing import process
from earshot.errors import error_for_code
from earshot.http.app import json_response
from earshot.http.controls import pop_json_controls
from earshot.http.request import ApiRequest
from earshot.http.streaming import can_stream, sse, sse_comment, stream_response
from earshot.http.validation import json_body, parse_model
from earshot.kinds.understanding import completion_chunk
from earshot.ports import Task
from earshot.runtime import Runtime, get_runtime
from earshot.schemas import UnderstandingRequest
from earshot.services.audio_source import AudioReference, resolve_audio
from earshot.services.charged_run import AudioPayload
from earshot.services.task_views import task_document, wait_for_final


def create_llm_task(request: ApiRequest) -> Response[str]:
    request.principal()
    runtime = get_runtime()
    payload = json_body(request)
    controls = pop_json_controls(payload, ("callback_url",))  # always a task: sync=true waits for it
    body = parse_model(UnderstandingRequest, payload)
    file_id = body.audio if body.audio.startswith("file-") else None
    audio_url = body.audio if not (file_id or body.audio.startswith("data:")) else None
    inline = None
    if body.audio.startswith("data:"):  # decoded (and size-checked) now, before anything is stored
        reference = AudioReference(inline=body.audio)
        inline = resolve_audio(
            runtime, reference, principal=None, deadline_sec=0, max_bytes=runtime.settings.max_inline_bytes
        )

    def audio(_deadline: float) -> AudioPayload:
        assert inline is not None
        return inline

    options = body.model_dump(mode="json", exclude={"audio", "sync"})
    submitted = process(
        request,
        kind="llm",
        options=options,
        audio=audio,
        audio_url=audio_url,
        audio_param="audio",
        file_id=file_id,
        controls=controls,
        task_model=body.model,
        stream=body.stream,
        force_async=True,
    )
    if not body.sync:
        submitted.status_code = 200  # this route's contract: the task object is the answer
        return submitted
    task = runtime.tasks.get_task(json.loads(str(submitted.body))["id"])
    assert task is not None
    if body.stream and can_stream(request):
        return stream_response(request, _streamed_chunks(runtime, task, body.model))
    task = wait_for_final(runtime, task, request.deadline_sec(default=25.0, reserve=2.0))
    if task.status == "failed":  # a sync caller gets the task's error, as the sync routes answer theirs
        failure = task.error or {}
        raise error_for_code(
            str(failure.get("code", "internal_error")),
            str(failure.get("message", "the task failed")),
            param=failure.get("param"),
        )
    document = task_document(runtime, task)
    if body.stream and task.status == "completed" and document["results"]:
        chunk = completion_chunk(document["results"][0])
        events = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
        return Response(status_code=200, content_type="text/event-stream", body=events)
    return json_response(document, status=200 if task.status in ("completed", "failed") else 202)


def _streamed_chunks(runtime: Runtime, task: Task, model: str) -> Iterator[bytes]:
    """The answer as chat.completion.chunk events as it is produced: the role at once, then the content
    when the engine has it, then the finish (with usage and billing), then ``[DONE]``."""
    from earshot.api.tasks import HEARTBEAT_SEC
    from earshot.services.task_views import FINAL, task_document

    chunk_id = f"chatcmpl-{task.id}"
    yield sse(_chunk(chunk_id, model, {"role": "assistant", "content": ""}))
    last_sent = time.monotonic()
    while task.status not in FINAL:
        time.sleep(0.2)
        task = runtime.tasks.get_task(task.id) or task
        if time.monotonic() - last_sent >= HEARTBEAT_SEC:
            yield sse_comment()
            last_sent = time.monotonic()
    document = task_document(runtime, task)
    if task.status != "completed" or not document["results"]:
        yield sse({"error": document.get("error") or {"message": "the task failed", "type": "api_error"}})
        return
    completion = document["results"][0]
    choice = (completion.get("choices") or [{}])[0]
    yield sse(_chunk(chunk_id, model, {"content": (choice.get("message") or {}).get("content", "")}))
    final = _chunk(chunk_id, model, {}, finish_reason=choice.get("finish_reason") or "stop")
    yield sse({**final, "usage": completion.get("usage"), "billing": completion.get("billing")})
    yield sse("[DONE]")


def _chunk(chunk_id: str, model: str, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
