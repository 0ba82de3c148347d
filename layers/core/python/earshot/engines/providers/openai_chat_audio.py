"""OpenAI chat completions with an ``input_audio`` content part (gpt-4o-audio-preview, gpt-audio and alikes)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Unpack

import httpx
from pydantic import BaseModel, Field, ValidationError

from earshot.engines.base import KnownAudio, Segment, Transcript, TranscriptionOptions
from earshot.engines.providers import FinishReason, GenerationResult, transcription_instruction
from earshot.engines.providers.audio_convert import PreparedAudio, prepare_audio
from earshot.engines.providers.base import UpstreamEngine, UpstreamOptions
from earshot.errors import ProviderError, UnsupportedByModelError

OPENAI_BASE_URL = "https://api.openai.com/v1"
# OpenAI documents no request limit for chat audio; this conservative bound keeps a request well inside what
# upstreams and our own memory take. Raise it per deployment when the upstream allows more.
DEFAULT_MAX_REQUEST_BYTES = 20 * 1000 * 1000

# ``input_audio.format`` takes exactly these; everything else is re-encoded first.
_INPUT_AUDIO_FORMATS = frozenset({"wav", "mp3"})
_REQUEST_OVERHEAD_BYTES = 8 * 1024
_FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length", "content_filter": "content_filter"}
_JSON_INSTRUCTION = "Respond with a single JSON object."
_TRANSCRIPT_FORMAT = " Reply with the transcript text only."


class _Message(BaseModel):
    content: str | None = None
    refusal: str | None = None


class _Choice(BaseModel):
    message: _Message
    finish_reason: str | None = None


class _Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _ChatCompletion(BaseModel):
    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage = Field(default_factory=_Usage)


class OpenAIChatAudioEngine(UpstreamEngine):
    """``AudioQuestionEngine`` and ``TranscriptionEngine`` on ``POST {base_url}/chat/completions`` with audio input.

    The audio goes inline as base64 ``wav`` or ``mp3``; other formats are re-encoded to 16 kHz mono WAV, or MP3
    when WAV is too large. Chat models give no timestamps: a transcript is one segment spanning the audio, its
    language is the one the request named (``und`` when none), and word timestamps are refused.

    Parameters
    ----------
    max_request_bytes
        The largest request sent, audio as base64 and prompts included.
    **options
        ``UpstreamOptions``; ``base_url`` is the ``.../v1`` root, and the API key goes as ``Authorization: Bearer``.
    """

    default_base_url = OPENAI_BASE_URL
    default_model = "gpt-4o-audio-preview"
    default_provider = "OpenAI"

    def __init__(
        self, *, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, **options: Unpack[UpstreamOptions]
    ) -> None:
        super().__init__(**options)
        self._max_request_bytes = max_request_bytes

    def check(self, options: TranscriptionOptions) -> None:
        """Refuse word timestamps: a chat model gives none."""
        if options.word_timestamps:
            raise UnsupportedByModelError(
                "this model gives no timestamps; use a Whisper model for word timestamps",
                param="timestamp_granularities",
            )

    def transcribe(self, audio: Path, options: TranscriptionOptions) -> Transcript:
        """Transcribe (or translate into English) ``audio`` by asking the chat model for the text alone."""
        self.check(options)
        prepared, result = self._complete(
            audio,
            transcription_instruction(options) + _TRANSCRIPT_FORMAT,
            system=None,
            extra={"temperature": options.temperature},
            model=options.upstream_model,
            deadline_sec=self._deadline_sec(options),
            known=options.known_audio,
        )
        if result.finish_reason == "length":
            raise ProviderError(f"{self._provider} stopped before the transcript was complete")
        if result.finish_reason == "content_filter":
            raise ProviderError(f"{self._provider} declined to transcribe this audio")
        text = result.text.strip()
        duration = prepared.duration_sec or 0.0
        segments = [Segment(id=0, start=0.0, end=duration, text=text)] if text else []
        if options.task == "translate":
            language = "en"
        else:
            language = (options.language or "und").strip().lower().replace("_", "-").split("-")[0]
        return Transcript(text=text, language=language, segments=segments)

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
        """Answer ``question`` about ``audio``; ``json_mode`` asks for a JSON object (``response_format``)."""
        extra: dict[str, Any] = {}
        if max_tokens is not None:
            extra["max_completion_tokens"] = max_tokens
        if temperature is not None:
            extra["temperature"] = temperature
        if json_mode:
            extra["response_format"] = {"type": "json_object"}
            # OpenAI refuses JSON mode unless the messages themselves mention JSON.
            if "json" not in f"{system or ''} {question}".lower():
                system = f"{system}\n\n{_JSON_INSTRUCTION}" if system else _JSON_INSTRUCTION
        _, result = self._complete(audio, question, system=system, extra=extra, model="", deadline_sec=deadline_sec)
        return result

    def _complete(
        self,
        audio: Path,
        prompt: str,
        *,
        system: str | None,
        extra: dict[str, Any],
        model: str,
        deadline_sec: float,
        known: KnownAudio | None = None,
    ) -> tuple[PreparedAudio, GenerationResult]:
        text_bytes = len(prompt.encode()) + len((system or "").encode()) + len(json.dumps(extra))
        room = self._max_request_bytes - text_bytes - _REQUEST_OVERHEAD_BYTES
        prepared = prepare_audio(
            audio,
            accepted=_INPUT_AUDIO_FORMATS,
            targets=("wav", "mp3"),
            max_bytes=max(0, room) * 3 // 4,  # base64 grows the audio by a third
            upstream=self._provider,
            known=known,
        )
        messages: list[dict[str, Any]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": prompt},
                    {
                        "type": "input_audio",
                        "input_audio": {
                            "data": base64.b64encode(prepared.data).decode("ascii"),
                            "format": prepared.format,
                        },
                    },
                ],
            }
        )
        content = json.dumps({"model": model or self._model, "messages": messages, **extra}).encode()
        url = f"{self._base_url}/chat/completions"

        def build() -> httpx.Request:
            return httpx.Request(
                "POST",
                url,
                headers={"authorization": f"Bearer {self._api_key}", "content-type": "application/json"},
                content=content,
            )

        payload = self._call(build, deadline_sec=deadline_sec)
        try:
            completion = _ChatCompletion.model_validate(payload)
        except ValidationError as exc:
            raise ProviderError(f"{self._provider} answered with an unexpected shape") from exc
        choice = completion.choices[0]
        refused = choice.message.content is None and bool(choice.message.refusal)
        return prepared, GenerationResult(
            text=choice.message.content or "",
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            finish_reason="content_filter" if refused else _FINISH_REASONS.get(choice.finish_reason or "", "stop"),
        )
