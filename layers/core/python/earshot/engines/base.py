"""What every transcription engine speaks: a request in, a ``Transcript`` out."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from earshot.errors import UnsupportedByModelError


class Word(BaseModel):
    word: str
    start: float
    end: float


class Segment(BaseModel):
    id: int
    start: float
    end: float
    text: str
    words: list[Word] = Field(default_factory=list)
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    speaker: str | None = Field(default=None, description="Set by diarization: A, B, ... or a known speaker's name.")


class Transcript(BaseModel):
    """An engine's answer. ``language`` is an ISO-639-1 code (``en``)."""

    text: str
    language: str
    segments: list[Segment] = Field(default_factory=list)
    words: list[Word] = Field(default_factory=list)


class TranscriptionOptions(BaseModel):
    task: Literal["transcribe", "translate"] = "transcribe"
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    word_timestamps: bool = False
    upstream_model: str = ""
    deadline_sec: float | None = Field(default=None, description="Seconds left for this call, when bounded.")


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


# The embedded recogniser's one language (the lazy proxy checks it before loading the engine).
ENGLISH = frozenset({"en", "en-us", "english"})


def check_english_only(options: TranscriptionOptions) -> None:
    """The embedded recogniser's one language: English (or a request that leaves the language open)."""
    if options.language is None:
        return
    if options.language.strip().lower().replace("_", "-") not in ENGLISH:
        raise UnsupportedByModelError(
            f"language {options.language!r} is not available: the embedded engine only has English; "
            "configure an upstream model for other languages",
            param="language",
        )
