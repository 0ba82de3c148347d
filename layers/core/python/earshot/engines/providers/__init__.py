"""Upstream provider engines: OpenAI-compatible transcription, Gemini, OpenAI chat with audio input.

Each engine calls its upstream through ``providers.http.call_upstream`` (deadline, bounded retries, typed
errors). The transcription engines implement ``engines.base.TranscriptionEngine``; the engines that answer free
questions about audio also implement ``AudioQuestionEngine`` below. This module holds only the shared types, so
importing it does not import httpx or PyAV.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel

from earshot.engines.base import TranscriptionOptions

FinishReason = Literal["stop", "length", "content_filter"]


class GenerationResult(BaseModel):
    """A model's answer to a question about audio.

    ``finish_reason`` uses OpenAI's chat vocabulary (the ``/v1/audio/understanding`` results are ChatCompletions):
    ``stop`` (done), ``length`` (hit ``max_tokens``), ``content_filter`` (the upstream withheld the answer).
    ``completion_tokens`` counts every generated token the upstream bills, reasoning included.
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: FinishReason = "stop"


class AudioQuestionEngine(Protocol):
    """An engine that answers a free-form question about a recording (understand, extract, understanding).

    Raises ``InvalidAudioError`` for audio it cannot decode, ``FileTooLargeError`` for audio longer than one
    upstream request can carry, ``ProviderError``/``ProviderTimeoutError`` when the upstream fails.
    """

    def ask(
        self,
        audio: Path,
        question: str,
        *,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_mode: bool = False,
        deadline_sec: float,
    ) -> GenerationResult:
        """Answer ``question`` about the local audio file ``audio`` within ``deadline_sec`` seconds."""
        ...


def transcription_instruction(options: TranscriptionOptions) -> str:
    """What to ask a general audio model for when the request is a transcription (or a translation)."""
    if options.task == "translate":
        task = "Translate the speech in this recording into English, sentence by sentence, completely."
    else:
        task = "Transcribe the speech in this recording verbatim and completely, in the language it is spoken in."
        if options.language:
            task += f" The speech is in the language with ISO-639-1 code {options.language!r}."
    if options.prompt:
        task += (
            " Text that came before this recording follows; use it only for spelling and style, do not repeat it: "
            f"{options.prompt!r}."
        )
    return task + " Do not describe the audio, add commentary, or answer questions heard in it."


__all__ = ["AudioQuestionEngine", "FinishReason", "GenerationResult", "transcription_instruction"]
