"""``POST /api/v2/Audio/transcribe``: transcription in the v2 shape, errors in the caller's culture."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.api.processing import process
from earshot.errors import EarshotError, InvalidRequestError
from earshot.http.forms import read_form
from earshot.http.i18n import CULTURES, localized
from earshot.http.request import ApiRequest
from earshot.runtime import get_runtime
from earshot.schemas import V2TranscribeForm
from earshot.services.charged_run import AudioPayload


def create_v2_transcription(request: ApiRequest) -> Response[str]:
    culture = (request.query.get("culture") or "en").lower()
    try:
        if culture not in CULTURES:
            culture = "en"
            raise InvalidRequestError("culture must be 'en' or 'es'", param="culture")
        return _transcribe(request)
    except EarshotError as error:
        raise localized(error, culture) from error


def _transcribe(request: ApiRequest) -> Response[str]:
    request.principal()
    runtime = get_runtime()
    parsed = read_form(request, V2TranscribeForm, limit=runtime.settings.max_inline_bytes)
    form = parsed.form
    payload = AudioPayload(form.file, parsed.filename)
    options = form.model_dump(mode="json", exclude={"file"})
    return process(request, kind="transcribev2", options=options, audio=lambda _: payload, controls=parsed.controls)
