"""Transcription and translation: check the request, then the shared metered, charged run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from earshot.engines.base import KnownAudio, Transcript, TranscriptionOptions
from earshot.errors import InvalidRequestError
from earshot.metering import MeteredAudio
from earshot.runtime import Runtime
from earshot.services.charged_run import ChunkedWork, Plan


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
    _, max_chunk_sec = runtime.engine_parallelism(model)

    def chunked(
        opts: TranscriptionOptions, finish: Callable[[Path, Transcript], Transcript]
    ) -> ChunkedWork[Transcript]:
        """How a task runs this on long audio: one engine call per chunk, in the language decided for all."""

        def transcribe(path: Path, language: str | None) -> Transcript:
            return engine.transcribe(path, opts.model_copy(update={"language": language or opts.language}))

        assert max_chunk_sec is not None
        return ChunkedWork(max_chunk_sec=max_chunk_sec, transcribe=transcribe, finish=finish, language=opts.language)

    if not job.diarize:
        if job.known_speaker_names or job.known_speaker_references:
            raise InvalidRequestError(
                "known_speaker_names[] and known_speaker_references[] need response_format=diarized_json",
                param="response_format",
            )
        return Plan(
            model=model,
            work=lambda path, metered: engine.transcribe(path, knowing(options, metered)),
            label=job.task,
            chunked=chunked(options, lambda _path, merged: merged) if max_chunk_sec else None,
        )
    if job.task != "transcribe":
        raise InvalidRequestError(
            "diarized_json is a transcription format, not a translation one", param="response_format"
        )
    from earshot.services.diarization import check_known_speakers, diarize_transcript

    known = check_known_speakers(job.known_speaker_names, job.known_speaker_references)
    # Word times let a segment that spans two voices be split where the voice changes.
    timed = options.model_copy(update={"word_timestamps": True})

    def work(path: Path, metered: MeteredAudio) -> Transcript:
        return diarize_transcript(engine.transcribe(path, knowing(timed, metered)), path, known)

    def finish(path: Path, merged: Transcript) -> Transcript:
        # Speakers are found over the whole recording, so the chunks' segments share one set of them.
        return diarize_transcript(merged, path, known)

    return Plan(model=model, work=work, label="diarize", chunked=chunked(timed, finish) if max_chunk_sec else None)


def knowing(options: TranscriptionOptions, metered: MeteredAudio) -> TranscriptionOptions:
    """``options`` for the file that was metered as ``metered``: the engine need not open it again to name it."""
    known = KnownAudio(
        format_name=metered.format_name, codec=metered.codec, has_video=metered.has_video, seconds=metered.seconds
    )
    return options.model_copy(update={"known_audio": known})
