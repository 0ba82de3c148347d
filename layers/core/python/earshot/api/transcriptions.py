"""``POST /v1/audio/transcriptions`` and ``POST /v1/audio/translations`` (OpenAI compatible)."""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.engines.base import Transcript
from earshot.http.app import json_response
from earshot.http.billing import billing_block, billing_headers
from earshot.http.forms import read_form
from earshot.http.request import ApiRequest
from earshot.jobs.kinds import Prepared
from earshot.render import full_language_name, render_srt, render_text, render_vtt
from earshot.runtime import Runtime, get_runtime
from earshot.schemas import (
    DurationUsage,
    SegmentOut,
    TranscriptionForm,
    TranscriptionJson,
    TranscriptionVerboseJson,
    WordOut,
)
from earshot.services.metered import Metered
from earshot.services.transcription import TranscriptionJob, plan_transcription

_LIST_FIELDS = {name: "timestamp_granularities[]" for name in ("timestamp_granularities[]", "timestamp_granularities")}
_TEXT_TYPES = {
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


def create_transcription(request: ApiRequest) -> Response[str]:
    return _handle(request, kind="transcription")


def create_translation(request: ApiRequest) -> Response[str]:
    return _handle(request, kind="translation")


def _handle(request: ApiRequest, *, kind: str) -> Response[str]:
    from earshot.api.processing import form_audio, process

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
    return process(
        request,
        kind=kind,
        options=options,
        audio=audio,
        audio_url=form.url,
        file_id=form.file_id,
        controls=parsed.controls,
    )


def prepare_transcription(runtime: Runtime, options: dict[str, Any], deadline_sec: float) -> Prepared:
    return _prepare(runtime, options, deadline_sec, task="transcribe")


def prepare_translation(runtime: Runtime, options: dict[str, Any], deadline_sec: float) -> Prepared:
    return _prepare(runtime, options, deadline_sec, task="translate")


def _prepare(
    runtime: Runtime, options: dict[str, Any], deadline_sec: float, *, task: Literal["transcribe", "translate"]
) -> Prepared:
    form = TranscriptionForm.model_validate(options)
    plan = plan_transcription(
        runtime,
        TranscriptionJob(
            model=form.model,
            task=task,
            language=form.language,
            prompt=form.prompt,
            temperature=form.temperature,
            word_timestamps="word" in form.timestamp_granularities,
            deadline_sec=deadline_sec,
        ),
    )
    return Prepared(plan=plan, render=lambda outcome: _render(outcome, form, task))


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
            language=full_language_name(transcript.language),
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
