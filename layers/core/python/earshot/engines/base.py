"""What every transcription engine speaks: a request in, a ``Transcript`` out."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field


class Word(BaseModel):
    word: str
    start: float
    end: float
    probability: float | None = None


class Segment(BaseModel):
    """A stretch of the transcript; the optional fields are Whisper's decoding statistics where an engine has them."""

    id: int
    start: float
    end: float
    text: str
    words: list[Word] = Field(default_factory=list)
    seek: int = 0
    tokens: list[int] = Field(default_factory=list)
    temperature: float | None = None
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    no_speech_prob: float | None = None
    speaker: str | None = Field(default=None, description="Set by diarization: A, B, ... or a known speaker's name.")


class Transcript(BaseModel):
    """An engine's answer. ``language`` is the ISO-639-1 code (``en``) of ``text``'s language.

    ``language_probability`` is set when the engine identified the language itself (none was given).
    """

    text: str
    language: str
    language_probability: float | None = None
    segments: list[Segment] = Field(default_factory=list)
    words: list[Word] = Field(default_factory=list)


class KnownAudio(BaseModel):
    """What metering already found out about the file an engine is given (``earshot.metering.MeteredAudio``).

    An upstream engine names the file's format from it instead of opening the file again with PyAV (about 1.4 ms
    of every 1 MiB upload's latency), and gives the metered length where the upstream states none.
    """

    format_name: str = Field(description="The demuxer's name, as ffprobe (and PyAV) give it: mp3, ogg, mov,mp4,...")
    codec: str = Field(description="The first audio stream's codec: mp3, opus, aac, pcm_s16le...")
    has_video: bool = Field(description="A video stream beside the audio (cover art does not count).")
    seconds: float = Field(description="The metered length: what the audio holds, what was billed.")


class TranscriptionOptions(BaseModel):
    task: Literal["transcribe", "translate"] = "transcribe"
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    word_timestamps: bool = False
    upstream_model: str = ""
    deadline_sec: float | None = Field(default=None, description="Seconds left for this call, when bounded.")
    known_audio: KnownAudio | None = Field(
        default=None, description="Set by the charged run for the very file it metered (never for a chunk of it)."
    )


class TranscriptionEngine(Protocol):
    """A speech-to-text engine.

    Implementations raise ``UnsupportedByModelError`` for requests they cannot honour (a language
    they do not have) *before* doing work, ``InvalidAudioError`` for audio they cannot decode, and
    ``EngineError``/``ProviderError``/``ProviderTimeoutError`` when they fail on good audio.
    """

    def check(self, options: TranscriptionOptions) -> None:
        """Raise if ``options`` ask for something this engine cannot do. Cheap; called before billing."""
        ...

    def transcribe(self, audio: Path, options: TranscriptionOptions) -> Transcript:
        """Transcribe the local audio file ``audio``."""
        ...
