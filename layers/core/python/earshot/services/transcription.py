"""Transcription and translation: check the request, then the shared metered, charged run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from earshot.engines.base import Transcript, TranscriptionOptions
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
    return Plan(model=model, work=lambda path, _metered: engine.transcribe(path, options), label=job.task)
