"""``POST /v1/audio/understanding``: the seed-002 task API; ``results[0]`` is an OpenAI ChatCompletion."""

from __future__ import annotations

import json

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.api.processing import process
from earshot.errors import error_for_code
from earshot.http.app import json_response
from earshot.http.controls import pop_json_controls
from earshot.http.request import ApiRequest
from earshot.http.validation import json_body, parse_model
from earshot.kinds.understanding import completion_chunk
from earshot.runtime import get_runtime
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
