"""``POST /v1/audio/transcriptions`` and ``POST /v1/audio/translations`` (OpenAI compatible)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from aws_lambda_powertools.event_handler import Response

from earshot.engines.base import Transcript
from earshot.errors import InvalidRequestError
from earshot.http.app import json_response
from earshot.http.billing import billing_block, billing_headers
from earshot.http.multipart import is_multipart, parse_multipart
from earshot.http.request import ApiRequest
from earshot.http.validation import parse_model
from earshot.render import language_name, render_srt, render_text, render_vtt
from earshot.runtime import get_runtime
from earshot.schemas import (
    DurationUsage,
    SegmentOut,
    TranscriptionForm,
    TranscriptionJson,
    TranscriptionVerboseJson,
    WordOut,
)
from earshot.services.audio_input import check_inline_size
from earshot.services.metered import AudioPayload, Metered
from earshot.services.transcription import TranscriptionJob, transcribe

# Room for the multipart framing and text fields around the file itself.
_FORM_OVERHEAD = 256 * 1024
_LIST_FIELDS = {"timestamp_granularities[]", "timestamp_granularities"}
_TEXT_TYPES = {
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


def create_transcription(request: ApiRequest) -> Response[str]:
    return _handle(request, task="transcribe")


def create_translation(request: ApiRequest) -> Response[str]:
    return _handle(request, task="translate")


@dataclass(frozen=True)
class _Upload:
    form: TranscriptionForm
    filename: str


def _read_form(request: ApiRequest, limit: int) -> _Upload:
    if not is_multipart(request.content_type):
        raise InvalidRequestError("send the audio as multipart/form-data with a 'file' field")
    check_inline_size(max(0, len(request.body) - _FORM_OVERHEAD), limit)
    form = parse_multipart(request.body, request.content_type)
    upload = form.files.get("file")
    if upload is None:
        raise InvalidRequestError("missing the 'file' field (the audio to transcribe)", param="file")
    check_inline_size(len(upload.data), limit)
    extra_files = set(form.files) - {"file"}
    if extra_files:
        raise InvalidRequestError(f"unexpected file field {sorted(extra_files)[0]!r}", param=sorted(extra_files)[0])
    data: dict[str, Any] = {"file": upload.data}
    for name, values in form.fields.items():
        if name in _LIST_FIELDS:
            data["timestamp_granularities[]"] = values
        elif len(values) > 1:
            raise InvalidRequestError(f"field {name!r} was sent more than once", param=name)
        else:
            data[name] = values[0]
    parsed = parse_model(TranscriptionForm, data)
    request.body = b""  # the audio now lives in the form; drop the request's copy early
    return _Upload(form=parsed, filename=upload.filename)


def _handle(request: ApiRequest, *, task: Literal["transcribe", "translate"]) -> Response[str]:
    principal = request.principal()
    runtime = get_runtime()
    upload = _read_form(request, runtime.settings.max_inline_bytes)
    form = upload.form
    job = TranscriptionJob(
        audio=AudioPayload(form.file, upload.filename),
        model=form.model,
        task=task,
        language=form.language,
        prompt=form.prompt,
        temperature=form.temperature,
        word_timestamps="word" in form.timestamp_granularities,
        deadline_sec=request.deadline_sec(default=runtime.settings.request_timeout_sec),
    )
    outcome = transcribe(runtime, principal, request.request_id, job)
    return _render(outcome, form, task)


def _render(
    outcome: Metered[Transcript], form: TranscriptionForm, task: Literal["transcribe", "translate"]
) -> Response[str]:
    bill = billing_block(outcome)
    headers = billing_headers(outcome)
    transcript = outcome.result
    usage = DurationUsage(seconds=bill.duration_sec)
    fmt = form.response_format
    if fmt == "json":
        return json_response(
            TranscriptionJson(text=transcript.text, model=outcome.model.sku, usage=usage, billing=bill), headers=headers
        )
    if fmt == "verbose_json":
        body = TranscriptionVerboseJson(
            task=task,
            language=language_name(transcript.language),
            duration=bill.duration_sec,
            text=transcript.text,
            segments=[
                SegmentOut(
                    id=seg.id,
                    start=round(seg.start, 3),
                    end=round(seg.end, 3),
                    text=seg.text,
                    temperature=form.temperature,
                    avg_logprob=seg.avg_logprob,
                    no_speech_prob=seg.no_speech_prob,
                )
                for seg in transcript.segments
            ],
            words=[WordOut(word=w.word, start=round(w.start, 3), end=round(w.end, 3)) for w in transcript.words]
            if "word" in form.timestamp_granularities
            else None,
            model=outcome.model.sku,
            usage=usage,
            billing=bill,
        )
        return json_response(body, headers=headers)
    if fmt == "text":
        text = render_text(transcript.text)
    elif fmt == "srt":
        text = render_srt(transcript.segments)
    else:
        text = render_vtt(transcript.segments)
    return Response(status_code=200, content_type=_TEXT_TYPES[fmt], body=text, headers=headers)
