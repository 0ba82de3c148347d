"""``POST /api/v1/extract-audio`` and ``GET /api/v1/extract-audio`` (structured data from audio)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.billing import extraction_credits
from earshot.http.app import json_response
from earshot.http.billing import billing_headers
from earshot.http.request import ApiRequest
from earshot.http.validation import json_body, parse_model
from earshot.jobs.kinds import Prepared
from earshot.runtime import Runtime, get_runtime
from earshot.schemas import ExtractFormats, ExtractRequest, ExtractResponse
from earshot.services.audio_source import from_base64, from_url
from earshot.services.metered import AudioPayload, Metered
from earshot.services.understand import EXTRACT_MAX_SECONDS, Extraction, plan_extract
from earshot.services.uploads import audio_from_file_id

MB = 1024 * 1024
MAX_AUDIO_BYTES = 100 * MB
FORMATS = ["wav", "mp3", "aiff", "aac", "ogg", "flac", "m4a", "webm"]


LARGER_FILES = "inputMethod 'url' (https) up to maxFileSizeMB, or POST /v1/uploads and then inputMethod 'file_id'"


def inline_limit(runtime: Runtime) -> int:
    """Largest base64 audio: the documented 100 MB locally; deployed, what fits a Lambda request (6 MB of base64)."""
    if runtime.settings.runtime == "local":
        return min(MAX_AUDIO_BYTES, runtime.settings.max_fetch_bytes)
    return min(MAX_AUDIO_BYTES, runtime.settings.max_inline_bytes)


def list_formats(request: ApiRequest) -> Response[str]:
    request.principal()
    return json_response(
        ExtractFormats(
            supportedFormats=FORMATS,
            maxFileSizeMB=MAX_AUDIO_BYTES // MB,
            maxDurationSeconds=int(EXTRACT_MAX_SECONDS),
            maxInlineSizeMB=round(inline_limit(get_runtime()) / MB, 1),
            largerFiles=LARGER_FILES,
        )
    )


def create_extraction(request: ApiRequest) -> Response[str]:
    from earshot.api.processing import process

    request.principal()
    runtime = get_runtime()
    payload = json_body(request)
    controls: dict[str, str] = {name: str(payload.pop(name)) for name in ("async", "callback_url") if name in payload}
    if "async" in controls:
        controls["async"] = controls["async"].lower()  # JSON true arrives as "True"
    body = parse_model(ExtractRequest, payload)
    limit = min(MAX_AUDIO_BYTES, runtime.settings.max_fetch_bytes)
    principal = request.principal()
    audio_url = body.audio if body.inputMethod == "url" else None
    file_id = body.audio if body.inputMethod == "file_id" else None
    inline = (  # before any charge
        from_base64(body.audio, max_bytes=inline_limit(runtime)) if body.inputMethod == "base64" else None
    )

    def audio(deadline: float) -> AudioPayload:
        if audio_url is not None:
            return from_url(runtime, audio_url, deadline_sec=deadline, max_bytes=limit)
        if file_id is not None:
            return audio_from_file_id(runtime, principal, file_id)
        assert inline is not None
        return inline

    options = body.model_dump(mode="json", by_alias=True, exclude={"audio", "inputMethod"})
    return process(
        request,
        kind="extract",
        options=options,
        audio=audio,
        audio_url=audio_url,
        audio_param="audio",
        file_id=file_id,
        controls=controls,
    )


def prepare_extract(runtime: Runtime, options: dict[str, Any], deadline_sec: float) -> Prepared:
    body = ExtractRequest.model_validate({**options, "inputMethod": "base64", "audio": "-"})
    plan = plan_extract(
        runtime,
        prompt=body.prompt,
        model_name=body.model,
        json_mode=body.jsonMode,
        schema=body.schema_,
        deadline_sec=deadline_sec,
    )
    return Prepared(plan=plan, render=lambda outcome: _render(outcome, body.prompt))


def _render(outcome: Metered[Extraction], prompt: str) -> Response[str]:
    return json_response(
        ExtractResponse(
            results=outcome.result.value,
            prompt=prompt,
            audioDuration=round(outcome.billed_seconds, 3),
            creditUsage=extraction_credits(outcome.billed_seconds),
        ),
        headers=billing_headers(outcome),
    )
