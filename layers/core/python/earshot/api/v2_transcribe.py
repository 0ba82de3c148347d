"""``POST /api/v2/Audio/transcribe``: transcription in the v2 shape, errors in the caller's culture."""

from __future__ import annotations

import uuid
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.billing import usd
from earshot.engines.base import Transcript
from earshot.errors import InvalidRequestError
from earshot.http.app import json_response
from earshot.http.billing import billing_headers
from earshot.http.contracts.v2 import CULTURES
from earshot.http.forms import read_form
from earshot.http.request import ApiRequest
from earshot.jobs.kinds import Prepared
from earshot.render import full_language_name
from earshot.runtime import Runtime, get_runtime
from earshot.schemas import V2Cost, V2Metadata, V2TokenUsage, V2TranscribeForm, V2TranscribeResponse
from earshot.services.metered import AudioPayload, Metered
from earshot.services.transcription import TranscriptionJob, plan_transcription


def create_v2_transcription(request: ApiRequest) -> Response[str]:
    """Errors are answered in the v2 contract (``earshot.http.contracts.v2``), in the request's culture."""
    if (request.query.get("culture") or "en").lower() not in CULTURES:
        raise InvalidRequestError("culture must be 'en' or 'es'", param="culture")
    return _transcribe(request)


def _transcribe(request: ApiRequest) -> Response[str]:
    from earshot.api.processing import process

    request.principal()
    runtime = get_runtime()
    parsed = read_form(request, V2TranscribeForm, limit=runtime.settings.max_inline_bytes)
    form = parsed.form
    payload = AudioPayload(form.file, parsed.filename)
    options = form.model_dump(mode="json", exclude={"file"})
    return process(request, kind="transcribev2", options=options, audio=lambda _: payload, controls=parsed.controls)


def prepare_v2(runtime: Runtime, options: dict[str, Any], deadline_sec: float) -> Prepared:
    form = V2TranscribeForm.model_validate({**options, "file": b""})
    plan = plan_transcription(
        runtime, TranscriptionJob(model=form.model, prompt=form.prompt, deadline_sec=deadline_sec)
    )
    return Prepared(plan=plan, render=_render)


def _render(outcome: Metered[Transcript]) -> Response[str]:
    cost = usd(outcome.cost_micro_usd)
    # Audio models bill by the minute, not by tokens: the whole charge is the "prompt" (input) side.
    return json_response(
        V2TranscribeResponse(
            instanceId=str(uuid.uuid4()),
            transcript=outcome.result.text,
            metadata=V2Metadata(
                language=full_language_name(outcome.result.language), duration=f"{outcome.billed_seconds:.3f}"
            ),
            tokenUsage=V2TokenUsage(completionTokens=0, promptTokens=0, totalTokens=0),
            cost=V2Cost(completion=0.0, prompt=cost, total=cost, currency="USD"),
        ),
        headers=billing_headers(outcome),
    )
