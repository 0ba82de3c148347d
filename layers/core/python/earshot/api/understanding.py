"""``POST /v1/audio/understanding``: the seed-002 task API; ``results[0]`` is an OpenAI ChatCompletion."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.engines.providers import GenerationResult
from earshot.http.app import json_response
from earshot.http.billing import billing_block
from earshot.http.request import ApiRequest
from earshot.http.streaming import can_stream, sse, sse_comment, stream_response
from earshot.http.validation import json_body, parse_model
from earshot.jobs.kinds import Prepared
from earshot.ports import Task
from earshot.runtime import Runtime, get_runtime
from earshot.schemas import UnderstandingRequest
from earshot.services.audio_source import from_base64
from earshot.services.metered import AudioPayload, Metered
from earshot.services.understand import Question, plan_understand


def create_llm_task(request: ApiRequest) -> Response[str]:
    from earshot.api.processing import process
    from earshot.api.tasks import task_document, wait_for_final

    request.principal()
    runtime = get_runtime()
    payload = json_body(request)
    callback = payload.pop("callback_url", None)
    body = parse_model(UnderstandingRequest, payload)
    file_id = body.audio if body.audio.startswith("file-") else None
    audio_url = body.audio if not (file_id or body.audio.startswith("data:")) else None
    inline = None
    if body.audio.startswith("data:"):
        inline = from_base64(body.audio, max_bytes=runtime.settings.max_inline_bytes)

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
        controls={"callback_url": callback} if callback else {},
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
    document = task_document(runtime, task)
    if body.stream and task.status == "completed" and document["results"]:
        chunk = completion_chunk(document["results"][0])
        events = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
        return Response(status_code=200, content_type="text/event-stream", body=events)
    return json_response(document, status=200 if task.status in ("completed", "failed") else 202)


def _streamed_chunks(runtime: Runtime, task: Task, model: str) -> Iterator[bytes]:
    """The answer as chat.completion.chunk events as it is produced: the role at once, then the content
    when the engine has it, then the finish (with usage and billing), then ``[DONE]``."""
    from earshot.api.tasks import FINAL, HEARTBEAT_SEC, task_document

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


def prepare_llm(runtime: Runtime, options: dict[str, Any], deadline_sec: float) -> Prepared:
    body = UnderstandingRequest.model_validate({**options, "audio": "-"})
    plan = plan_understand(
        runtime,
        Question(
            question=body.prompt,
            model=body.model,
            system=body.system,
            max_tokens=body.max_tokens,
            temperature=body.temperature,
            deadline_sec=deadline_sec,
        ),
    )
    return Prepared(plan=plan, render=lambda outcome: _chat_completion(outcome, body.model))


def _chat_completion(outcome: Metered[GenerationResult], requested_model: str) -> Response[str]:
    result = outcome.result
    completion = {
        "id": f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": requested_model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
        },
        "billing": billing_block(outcome).model_dump(),
    }
    return json_response(completion)


def completion_chunk(completion: dict[str, Any]) -> dict[str, Any]:
    """A ChatCompletion as the single ``chat.completion.chunk`` a stream subscriber receives."""
    choice = (completion.get("choices") or [{}])[0]
    return {
        "id": completion.get("id"),
        "object": "chat.completion.chunk",
        "created": completion.get("created"),
        "model": completion.get("model"),
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": (choice.get("message") or {}).get("content", "")},
                "finish_reason": choice.get("finish_reason"),
            }
        ],
    }
