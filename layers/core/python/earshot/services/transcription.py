"""Transcription and translation: check the request, then the shared metered, charged run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from earshot.engines.base import Transcript, TranscriptionOptions
from earshot.errors import InvalidRequestError
from earshot.runtime import Runtime
from earshot.services.charged_run import Plan


@dataclass(frozen=True)
class TranscriptionJob:
    model: str
    task: Literal["transcribe", "translate"] = "transcribe"
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    word_timestamps: bool = False
    deadline_sec: float | None = None
    diarize: bool = False
    known_speaker_names: Sequence[str] = field(default_factory=tuple)
    known_speaker_references: Sequence[str] = field(default_factory=tuple)


def plan_transcription(runtime: Runtime, job: TranscriptionJob) -> Plan[Transcript]:
    """Resolve the model and check the options: everything refusable is refused before any charge."""
    model = runtime.catalog.resolve_transcription(job.model, translate=job.task == "translate")
    engine = runtime.transcription_engine(model)
    options = TranscriptionOptions(
        task=job.task,
        language=job.language,
        prompt=job.prompt,
        temperature=job.temperature,
        word_timestamps=job.word_timestamps,
        upstream_model=model.upstream_model,
        deadline_sec=job.deadline_sec,
    )
    engine.check(options)
    if not job.diarize:
        if job.known_speaker_names or job.known_speaker_references:
            raise InvalidRequestError(
                "known_speaker_names[] and known_speaker_references[] need response_format=diarized_json",
                param="response_format",
            )
        return Plan(model=model, work=lambda path, _metered: engine.transcribe(path, options), label=job.task)
    if job.task != "transcribe":
        raise InvalidRequestError(
            "diarized_json is a transcription format, not a translation one", param="response_format"
        )
    from earshot.services.diarization import check_known_speakers, diarize_transcript

    known = check_known_speakers(job.known_speaker_names, job.known_speaker_references)
    # Word times let a segment that spans two voices be split where the voice changes.
    timed = options.model_copy(update={"word_timestamps": True})

    def work(path: Path, _metered: object) -> Transcript:
        return diarize_transcript(engine.transcribe(path, timed), path, known)

    return Plan(model=model, work=work, label="diarize")
