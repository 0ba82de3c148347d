"""Gemini ``models/{model}:generateContent`` with the audio inline: questions, extraction, transcription."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Unpack

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from earshot.engines.base import KnownAudio, Segment, Transcript, TranscriptionOptions
from earshot.engines.providers import FinishReason, GenerationResult, transcription_instruction
from earshot.engines.providers.audio_convert import PreparedAudio, prepare_audio
from earshot.engines.providers.base import UpstreamEngine, UpstreamOptions
from earshot.errors import ProviderError, UnsupportedByModelError

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
# Gemini refuses inline requests (audio as base64, plus every prompt) larger than this; longer audio needs the
# Files API.
GEMINI_MAX_REQUEST_BYTES = 20 * 1000 * 1000

# The audio MIME types Gemini documents, by ``audio_convert.describe_format`` name. Everything else (m4a, webm,
# mp4...) is re-encoded first.
GEMINI_MIME_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mp3",
    "aiff": "audio/aiff",
    "aac": "audio/aac",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
}
# JSON text around the base64 audio: keys, generation config, schema.
_REQUEST_OVERHEAD_BYTES = 8 * 1024

_CONTENT_FILTER_REASONS = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE"}
)

_TRANSCRIPT_SCHEMA: dict[str, Any] = {
    "type": "OBJECT",
    "properties": {
        "language": {"type": "STRING", "description": "ISO-639-1 code of the spoken language"},
        "segments": {
            "type": "ARRAY",
            "items": {
                "type": "OBJECT",
                "properties": {
                    "start": {"type": "NUMBER", "description": "seconds from the start of the recording"},
                    "end": {"type": "NUMBER", "description": "seconds from the start of the recording"},
                    "text": {"type": "STRING"},
                },
                "required": ["start", "end", "text"],
            },
        },
    },
    "required": ["language", "segments"],
}
_TRANSCRIPT_FORMAT = (
    " Answer with JSON: the spoken language's ISO-639-1 code, and the speech as consecutive segments of one or two"
    " sentences, each with its start and end in seconds from the beginning of the recording."
)


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class _Part(_Wire):
    text: str | None = None
    thought: bool = False


class _Content(_Wire):
    parts: list[_Part] = Field(default_factory=list)


class _Candidate(_Wire):
    content: _Content | None = None
    finish_reason: str | None = None


class _Usage(_Wire):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    thoughts_token_count: int = 0


class _PromptFeedback(_Wire):
    block_reason: str | None = None


class _GenerateContentResponse(_Wire):
    candidates: list[_Candidate] = Field(default_factory=list)
    usage_metadata: _Usage = Field(default_factory=_Usage)
    prompt_feedback: _PromptFeedback | None = None


class _TranscriptSegment(BaseModel):
    start: float
    end: float
    text: str


class _TranscriptAnswer(BaseModel):
    language: str | None = None
    segments: list[_TranscriptSegment]


class GeminiAudioEngine(UpstreamEngine):
    """``TranscriptionEngine`` and ``AudioQuestionEngine`` on Gemini's ``generateContent``, audio sent inline.

    Audio in a format Gemini does not take (m4a, webm, mp4, ...) or too large for its 20 MB inline request is
    re-encoded to 16 kHz mono FLAC, or MP3 when FLAC does not fit; audio that fits in neither is refused with
    ``FileTooLargeError``. Transcripts are asked for as JSON segments with times; Gemini's times are estimates,
    good for subtitles, not for word alignment, so word timestamps are refused.

    Parameters
    ----------
    max_request_bytes
        The largest request sent, audio as base64 and prompts included (Gemini's inline limit, 20 MB).
    **options
        ``UpstreamOptions``. The API key goes as ``x-goog-api-key`` (never in the URL, where proxies log it); a
        ``models/`` prefix on ``upstream_model`` is dropped.
    """

    default_base_url = GEMINI_BASE_URL
    default_model = "gemini-2.5-flash"
    default_provider = "Gemini"

    def __init__(
        self, *, max_request_bytes: int = GEMINI_MAX_REQUEST_BYTES, **options: Unpack[UpstreamOptions]
    ) -> None:
        super().__init__(**options)
        self._model = self._model.removeprefix("models/")
        self._max_request_bytes = max_request_bytes

    def check(self, options: TranscriptionOptions) -> None:
        """Refuse word timestamps: Gemini's times are per segment, and approximate."""
        if options.word_timestamps:
            raise UnsupportedByModelError(
                "this model gives segment timestamps only; use a Whisper model for word timestamps",
                param="timestamp_granularities",
            )

    def transcribe(self, audio: Path, options: TranscriptionOptions) -> Transcript:
        """Transcribe (or translate into English) ``audio`` as JSON segments; see the class notes on timing."""
        self.check(options)
        prompt = transcription_instruction(options) + _TRANSCRIPT_FORMAT
        config: dict[str, Any] = {
            "temperature": options.temperature,
            "responseMimeType": "application/json",
            "responseSchema": _TRANSCRIPT_SCHEMA,
        }
        prepared, answer = self._generate(
            audio,
            prompt,
            system=None,
            config=config,
            model=options.upstream_model,
            deadline_sec=self._deadline_sec(options),
            known=options.known_audio,
        )
        result = _result(answer)
        if result.finish_reason == "length":
            raise ProviderError(f"{self._provider} stopped before the transcript was complete")
        if result.finish_reason == "content_filter":
            raise ProviderError(f"{self._provider} declined to transcribe this audio")
        transcript = _to_transcript(result.text, duration=prepared.duration_sec, fallback_language=options.language)
        if options.task == "translate":  # the words are English, whatever was spoken
            transcript.language = "en"
        return transcript

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
        """Answer ``question`` about ``audio``; ``json_mode`` makes Gemini answer with a JSON document."""
        config: dict[str, Any] = {}
        if max_tokens is not None:
            config["maxOutputTokens"] = max_tokens
        if temperature is not None:
            config["temperature"] = temperature
        if json_mode:
            config["responseMimeType"] = "application/json"
        _, answer = self._generate(audio, question, system=system, config=config, model="", deadline_sec=deadline_sec)
        return _result(answer)

    def _generate(
        self,
        audio: Path,
        prompt: str,
        *,
        system: str | None,
        config: dict[str, Any],
        model: str,
        deadline_sec: float,
        known: KnownAudio | None = None,
    ) -> tuple[PreparedAudio, _GenerateContentResponse]:
        text_bytes = len(prompt.encode()) + len((system or "").encode()) + len(json.dumps(config))
        room = self._max_request_bytes - text_bytes - _REQUEST_OVERHEAD_BYTES
        prepared = prepare_audio(
            audio,
            accepted=GEMINI_MIME_TYPES,
            targets=("flac", "mp3"),
            max_bytes=max(0, room) * 3 // 4,  # base64 grows the audio by a third
            upstream=self._provider,
            known=known,
        )
        body: dict[str, Any] = {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {
                            "inline_data": {
                                "mime_type": GEMINI_MIME_TYPES[prepared.format],
                                "data": base64.b64encode(prepared.data).decode("ascii"),
                            }
                        },
                        {"text": prompt},
                    ],
                }
            ],
        }
        if system:
            body["system_instruction"] = {"parts": [{"text": system}]}
        if config:
            body["generationConfig"] = config
        content = json.dumps(body).encode()
        name = (model or self._model).removeprefix("models/")
        url = f"{self._base_url}/models/{name}:generateContent"

        def build() -> httpx.Request:
            return httpx.Request(
                "POST",
                url,
                headers={"x-goog-api-key": self._api_key, "content-type": "application/json"},
                content=content,
            )

        payload = self._call(build, deadline_sec=deadline_sec)
        try:
            return prepared, _GenerateContentResponse.model_validate(payload)
        except ValidationError as exc:
            raise ProviderError(f"{self._provider} answered with an unexpected shape") from exc


def _result(answer: _GenerateContentResponse) -> GenerationResult:
    usage = answer.usage_metadata
    if answer.candidates:
        candidate = answer.candidates[0]
        parts = candidate.content.parts if candidate.content else []
        text = "".join(part.text for part in parts if part.text and not part.thought)  # thoughts are not the answer
        finish_reason = _finish_reason(candidate.finish_reason)
    else:  # the prompt itself was blocked (prompt_feedback.block_reason)
        text, finish_reason = "", "content_filter"
    return GenerationResult(
        text=text,
        prompt_tokens=usage.prompt_token_count,
        # Thinking tokens are billed as output, as OpenAI counts reasoning tokens in completion_tokens.
        completion_tokens=usage.candidates_token_count + usage.thoughts_token_count,
        finish_reason=finish_reason,
    )


def _finish_reason(reason: str | None) -> FinishReason:
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _CONTENT_FILTER_REASONS:
        return "content_filter"
    return "stop"


def _to_transcript(text: str, *, duration: float | None, fallback_language: str | None) -> Transcript:
    try:
        answer: _TranscriptAnswer | None = _TranscriptAnswer.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        answer = None
    if answer is None:  # not the JSON asked for: keep the words, lose the times
        plain = text.strip()
        segments = [Segment(id=0, start=0.0, end=duration or 0.0, text=plain)] if plain else []
        return Transcript(text=plain, language=_language(None, fallback_language), segments=segments)

    limit = duration if duration else float("inf")
    segments = []
    previous_end = 0.0
    for item in sorted(answer.segments, key=lambda seg: seg.start):
        if not item.text.strip():
            continue
        start = min(max(item.start, previous_end), limit)
        end = min(max(item.end, start), limit)
        segments.append(Segment(id=len(segments), start=start, end=end, text=item.text.strip()))
        previous_end = end
    return Transcript(
        text=" ".join(seg.text for seg in segments),
        language=_language(answer.language, fallback_language),
        segments=segments,
    )


def _language(reported: str | None, fallback: str | None) -> str:
    for value in (reported, fallback):
        if value and value.strip():
            return value.strip().lower().replace("_", "-").split("-")[0]
    return "und"
