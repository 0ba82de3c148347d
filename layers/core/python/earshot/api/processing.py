"""The shared route logic of every processing endpoint: sync run or async task, same checks first."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.errors import InvalidRequestError
from earshot.http.app import json_response
from earshot.http.request import ApiRequest
from earshot.jobs.kinds import prepare
from earshot.jobs.submit import submit_task
from earshot.runtime import get_runtime
from earshot.schemas import TaskOut
from earshot.services.metered import AudioPayload, audio_account, run_plan
from earshot.url_policy import check_caller_url

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def wants_async(request: ApiRequest, controls: dict[str, str]) -> bool:
    """``async=true`` (form field, JSON field or query) or ``Prefer: respond-async``."""
    prefer = request.headers.get("prefer", "")
    if any(part.strip().lower() == "respond-async" for part in prefer.split(",")):
        return True
    value = str(controls.get("async", request.query.get("async", ""))).strip().lower()
    if value not in _TRUE | _FALSE:
        raise InvalidRequestError("async must be true or false", param="async")
    return value in _TRUE


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
    audio_account(runtime, principal)
    deadline = request.deadline_sec(default=runtime.settings.request_timeout_sec)
    prepared = prepare(runtime, kind, options, deadline_sec=deadline)  # refusals happen here, before any charge
    if audio_url is not None:  # every URL passes the address policy now, and again when it is fetched
        check_caller_url(audio_url, param=audio_param, settings=runtime.settings)
    if force_async or wants_async(request, controls):
        callback = controls.get("callback_url") or None
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
    outcome = run_plan(runtime, principal, request.request_id, prepared.plan, audio(deadline), deadline_at=deadline_at)
    return prepared.render(outcome)


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
