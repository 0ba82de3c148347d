"""The shared route logic of every processing endpoint: sync run or async task, same checks first."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.http.app import json_response
from earshot.http.controls import read_controls
from earshot.http.idempotency import idempotency_key
from earshot.http.request import ApiRequest
from earshot.jobs.submit import submit_task
from earshot.kinds import Rendered, prepare
from earshot.runtime import get_runtime
from earshot.schemas import TaskOut
from earshot.services.accounts import audio_account
from earshot.services.charged_run import AudioPayload, deliver_charged, run_charged
from earshot.url_policy import check_caller_url


def process(
    request: ApiRequest,
    *,
    kind: str,
    options: dict[str, Any],
    audio: Callable[[float], AudioPayload],
    audio_url: str | None = None,
    audio_param: str = "url",
    file_id: str | None = None,
    controls: dict[str, str] | None = None,
    task_model: str | None = None,
    stream: bool = False,
    force_async: bool = False,
) -> Response[str]:
    """Run ``kind`` now and render it, or (async) answer 202 with a task whose result is that rendering.

    ``audio(deadline)`` produces the audio for the sync path; an async request with ``audio_url`` leaves
    the fetching to the workflow, and one with uploaded bytes stores them with the task.
    """
    controls = controls or {}
    principal = request.principal()
    runtime = get_runtime()
    audio_account(runtime.store, principal)
    deadline = request.deadline_sec(default=runtime.settings.request_timeout_sec)
    prepared = prepare(runtime, kind, options, deadline_sec=deadline)  # refusals happen here, before any charge
    if audio_url is not None:  # every URL passes the address policy now, and again when it is fetched
        check_caller_url(audio_url, param=audio_param, settings=runtime.settings)
    control = read_controls(request, controls, force_async=force_async)
    if control.run_async:
        callback = control.callback_url
        if callback:
            check_caller_url(callback, param="callback_url", settings=runtime.settings, unresolved_ok=True)
        blob_key, delete_after = None, True
        if file_id:
            from earshot.services.uploads import upload_blob

            blob_key, delete_after = upload_blob(runtime, principal, file_id)
        task = submit_task(
            runtime,
            principal,
            kind=kind,
            model=task_model or prepared.plan.model.sku,
            options=options,
            audio=None if (audio_url or blob_key) else audio(deadline),
            audio_url=audio_url,
            audio_blob_key=blob_key,
            delete_after=delete_after,
            callback_url=callback,
            request_id=request.request_id,
            stream=stream,
        )
        return json_response(TaskOut.from_task(task), status=202, headers={"Location": f"/v1/tasks/{task.id}"})
    deadline_at = time.monotonic() + deadline
    outcome = run_charged(
        runtime, principal, request.request_id, prepared.plan, audio(deadline), deadline_at=deadline_at
    )
    # A keyed request's hold is captured once its response is stored for replay (``run_idempotently``).
    capture = idempotency_key(request) is None
    return deliver_charged(runtime, outcome, lambda run: http_response(prepared.render(run)), capture=capture)


def http_response(rendered: Rendered, *, status: int = 200) -> Response[str]:
    """A kind's neutral result as the HTTP response of a sync route."""
    if rendered.is_json:
        body = json.dumps(rendered.body, separators=(",", ":"), ensure_ascii=False)
    else:
        body = str(rendered.body)
    return Response(status_code=status, content_type=rendered.content_type, body=body, headers=rendered.headers)


def form_audio(request: ApiRequest, form: Any, filename: str) -> Callable[[float], AudioPayload]:
    """The audio of a form with ``file``, ``url`` and ``file_id`` fields: exactly one must be given."""
    from earshot.services.audio_source import from_upload_or_url

    runtime = get_runtime()
    principal = request.principal()

    def audio(deadline: float) -> AudioPayload:
        return from_upload_or_url(
            runtime,
            data=form.file,
            filename=filename,
            url=form.url,
            file_id=form.file_id,
            principal=principal,
            deadline_sec=deadline,
        )

    if sum(1 for given in (form.file, form.url, form.file_id) if given) != 1:
        audio(0)  # raises the missing- or conflicting-audio error before anything else
    return audio
