"""``POST /v1/audio/transcriptions`` and ``POST /v1/audio/translations`` (OpenAI compatible)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.api.processing import form_audio, process
from earshot.errors import InvalidRequestError
from earshot.http.controls import read_controls
from earshot.http.forms import read_form
from earshot.http.request import ApiRequest
from earshot.runtime import get_runtime
from earshot.schemas import TranscriptionForm

_LIST_FIELDS = {
    name + suffix: name + "[]"
    for name in ("timestamp_granularities", "known_speaker_names", "known_speaker_references")
    for suffix in ("[]", "")
}


def create_transcription(request: ApiRequest) -> Response[str]:
    return _handle(request, kind="transcription")


def create_translation(request: ApiRequest) -> Response[str]:
    return _handle(request, kind="translation")


def _handle(request: ApiRequest, *, kind: str) -> Response[str]:
    from earshot.api.streamed import stream_transcription

    runtime = get_runtime()
    request.principal()  # a 401 before reading a large body
    parsed = read_form(
        request,
        TranscriptionForm,
        limit=runtime.settings.max_inline_bytes,
        list_fields=_LIST_FIELDS,
        file_required=False,
    )
    form = parsed.form
    options = form.model_dump(mode="json", by_alias=True, exclude={"file", "url", "file_id"})
    audio = form_audio(request, form, parsed.filename)
    if form.stream:
        if form.response_format not in ("json", "text", "verbose_json"):
            raise InvalidRequestError(
                "stream=true needs response_format json, text or verbose_json", param="response_format"
            )
        if not read_controls(request, parsed.controls).run_async:
            return stream_transcription(request, kind=kind, options=options, audio=audio)
    return process(
        request,
        kind=kind,
        options=options,
        audio=audio,
        audio_url=form.url,
        file_id=form.file_id,
        controls=parsed.controls,
        stream=form.stream,
    )
