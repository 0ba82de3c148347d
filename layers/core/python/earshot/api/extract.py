"""``POST /api/v1/extract-audio`` and ``GET /api/v1/extract-audio`` (structured data from audio)."""

from __future__ import annotations

import json

from aws_lambda_powertools.event_handler import Response

from earshot.billing import extraction_credits
from earshot.errors import InvalidRequestError
from earshot.http.app import json_response
from earshot.http.billing import billing_headers
from earshot.http.request import ApiRequest
from earshot.http.validation import parse_model
from earshot.runtime import get_runtime
from earshot.schemas import ExtractFormats, ExtractRequest, ExtractResponse
from earshot.services.audio_source import from_base64, from_url
from earshot.services.understand import EXTRACT_MAX_SECONDS, extract

MB = 1024 * 1024
MAX_AUDIO_BYTES = 100 * MB
FORMATS = ["wav", "mp3", "aiff", "aac", "ogg", "flac", "m4a", "webm"]


def list_formats(request: ApiRequest) -> Response[str]:
    request.principal()
    return json_response(
        ExtractFormats(
            supportedFormats=FORMATS, maxFileSizeMB=MAX_AUDIO_BYTES // MB, maxDurationSeconds=int(EXTRACT_MAX_SECONDS)
        )
    )


def create_extraction(request: ApiRequest) -> Response[str]:
    principal = request.principal()
    runtime = get_runtime()
    if not request.content_type.lower().startswith("application/json"):
        raise InvalidRequestError("send a JSON body (Content-Type: application/json)")
    try:
        payload = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError("the body is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise InvalidRequestError("the body must be a JSON object")
    body = parse_model(ExtractRequest, payload)
    deadline = request.deadline_sec(default=runtime.settings.request_timeout_sec)
    limit = min(MAX_AUDIO_BYTES, runtime.settings.max_fetch_bytes)
    if body.inputMethod == "url":
        audio = from_url(runtime, body.audio, deadline_sec=deadline, max_bytes=limit)
    else:
        audio = from_base64(body.audio, max_bytes=limit)
    outcome = extract(
        runtime,
        principal,
        request.request_id,
        audio=audio,
        prompt=body.prompt,
        model_name=body.model,
        json_mode=body.jsonMode,
        schema=body.schema_,
        deadline_sec=deadline,
    )
    return json_response(
        ExtractResponse(
            results=outcome.result.value,
            prompt=body.prompt,
            audioDuration=round(outcome.billed_seconds, 3),
            creditUsage=extraction_credits(outcome.billed_seconds),
        ),
        headers=billing_headers(outcome),
    )
