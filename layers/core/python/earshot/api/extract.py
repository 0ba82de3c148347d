"""``POST /api/v1/extract-audio`` and ``GET /api/v1/extract-audio`` (structured data from audio)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.api.processing import process
from earshot.http.app import json_response
from earshot.http.controls import pop_json_controls
from earshot.http.request import ApiRequest
from earshot.http.validation import json_body, parse_model
from earshot.runtime import Runtime, get_runtime
from earshot.schemas import ExtractFormats, ExtractRequest
from earshot.services.audio_source import AudioReference, resolve_audio
from earshot.services.charged_run import AudioPayload
from earshot.services.understand import EXTRACT_MAX_SECONDS

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
    request.principal()
    runtime = get_runtime()
    payload = json_body(request)
    controls = pop_json_controls(payload)
    body = parse_model(ExtractRequest, payload)
    limit = min(MAX_AUDIO_BYTES, runtime.settings.max_fetch_bytes)
    principal = request.principal()
    audio_url = body.audio if body.inputMethod == "url" else None
    file_id = body.audio if body.inputMethod == "file_id" else None
    reference = AudioReference(url=audio_url, file_id=file_id)
    if body.inputMethod == "base64":  # decoded (and size-checked) now, before any charge
        reference = AudioReference(
            data=resolve_audio(
                runtime,
                AudioReference(inline=body.audio),
                principal=principal,
                deadline_sec=0,
                max_bytes=inline_limit(runtime),
            ).data
        )

    def audio(deadline: float) -> AudioPayload:
        return resolve_audio(runtime, reference, principal=principal, deadline_sec=deadline, max_bytes=limit)

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
