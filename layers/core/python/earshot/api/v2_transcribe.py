"""``POST /api/v2/Audio/transcribe``: transcription in the v2 shape, errors in the caller's culture."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.api.processing import process
from earshot.errors import InvalidRequestError
from earshot.http.contracts.v2 import CULTURES
from earshot.http.forms import read_form
from earshot.http.request import ApiRequest
from earshot.runtime import get_runtime
from earshot.schemas import V2TranscribeForm
from earshot.services.charged_run import AudioPayload


def create_v2_transcription(request: ApiRequest) -> Response[str]:
    """Errors are answered in the v2 contract (``earshot.http.contracts.v2``), in the request's culture."""
    if (request.query.get("culture") or "en").lower() not in CULTURES:
        raise InvalidRequestError("culture must be 'en' or 'es'", param="culture")
    return _transcribe(request)


def _transcribe(request: ApiRequest) -> Response[str]:
    request.principal()
    runtime = get_runtime()
    parsed = read_form(request, V2TranscribeForm, limit=runtime.settings.max_inline_bytes)
    form = parsed.form
    payload = AudioPayload(form.file, parsed.filename)
    options = form.model_dump(mode="json", exclude={"file"})
    return process(request, kind="transcribev2", options=options, audio=lambda _: payload, controls=parsed.controls)
