"""``POST /v1/audio/understanding``: the seed-002 task API; ``results[0]`` is an OpenAI ChatCompletion."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.engines.providers import GenerationResult
from earshot.http.app import json_response
from earshot.http.billing import billing_block
from earshot.http.request import ApiRequest
from earshot.http.validation import json_body, parse_model
from earshot.jobs.kinds import Prepared
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
    task = wait_for_final(runtime, task, request.deadline_sec(default=25.0, reserve=2.0))
    document = task_document(runtime, task)
    if body.stream and task.status == "completed" and document["results"]:
        chunk = completion_chunk(document["results"][0])
        events = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
        return Response(status_code=200, content_type="text/event-stream", body=events)
    return json_response(document, status=200 if task.status in ("completed", "failed") else 202)


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
