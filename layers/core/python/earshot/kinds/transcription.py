"""The transcription and translation kinds (``POST /v1/audio/transcriptions``, ``/v1/audio/translations``)."""

from __future__ import annotations

from typing import Any, Literal

from earshot.engines.base import Transcript
from earshot.kinds.base import Prepared, Rendered, rendered_json
from earshot.kinds.billing import billing_block, billing_headers
from earshot.render import full_language_name, render_srt, render_text, render_vtt
from earshot.runtime import Runtime
from earshot.schemas import (
    DiarizedSegmentOut,
    DurationUsage,
    SegmentOut,
    TranscriptionDiarizedJson,
    TranscriptionForm,
    TranscriptionJson,
    TranscriptionVerboseJson,
    WordOut,
)
from earshot.services.charged_run import ChargedRun
from earshot.services.transcription import TranscriptionJob, plan_transcription

TEXT_TYPES = {
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


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
            diarize=form.response_format == "diarized_json",
            known_speaker_names=form.known_speaker_names,
            known_speaker_references=form.known_speaker_references,
        ),
    )
    return Prepared(plan=plan, render=lambda outcome: _render(outcome, form, task))


def _render(
    outcome: ChargedRun[Transcript], form: TranscriptionForm, task: Literal["transcribe", "translate"]
) -> Rendered:
    bill = billing_block(outcome)
    headers = billing_headers(outcome)
    transcript = outcome.result
    usage = DurationUsage(seconds=bill.duration_sec)
    fmt = form.response_format
    if fmt == "json":
        return rendered_json(
            TranscriptionJson(text=transcript.text, model=outcome.model.sku, usage=usage, billing=bill), headers=headers
        )
    if fmt == "verbose_json":
        body = TranscriptionVerboseJson(
            task=task,
            language=full_language_name(transcript.language),
            duration=bill.duration_sec,
            text=transcript.text,
            language_probability=transcript.language_probability,
            segments=[
                SegmentOut(
                    id=seg.id,
                    seek=seg.seek,
                    start=round(seg.start, 3),
                    end=round(seg.end, 3),
                    text=seg.text,
                    tokens=seg.tokens,
                    temperature=form.temperature if seg.temperature is None else seg.temperature,
                    avg_logprob=seg.avg_logprob,
                    compression_ratio=seg.compression_ratio,
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
        return rendered_json(body, headers=headers)
    if fmt == "diarized_json":
        diarized = TranscriptionDiarizedJson(
            duration=bill.duration_sec,
            text=transcript.text,
            segments=[
                DiarizedSegmentOut(
                    id=f"seg_{seg.id:03d}",
                    start=round(seg.start, 3),
                    end=round(seg.end, 3),
                    text=seg.text.strip(),
                    speaker=seg.speaker or "A",
                )
                for seg in transcript.segments
            ],
            model=outcome.model.sku,
            usage=usage,
            billing=bill,
        )
        return rendered_json(diarized, headers=headers)
    if fmt == "text":
        text = render_text(transcript.text)
    elif fmt == "srt":
        text = render_srt(transcript.segments)
    else:
        text = render_vtt(transcript.segments)
    return Rendered(body=text, content_type=TEXT_TYPES[fmt], headers=headers)
