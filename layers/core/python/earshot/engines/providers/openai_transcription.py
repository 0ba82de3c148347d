"""OpenAI-compatible speech-to-text: OpenAI, Groq, or any Whisper server speaking ``/audio/transcriptions``."""

from __future__ import annotations

from pathlib import Path
from typing import Unpack

import httpx
from pydantic import BaseModel, ValidationError

from earshot.engines.base import Segment, Transcript, TranscriptionOptions, Word
from earshot.engines.providers.audio_convert import prepare_audio
from earshot.engines.providers.base import UpstreamEngine, UpstreamOptions
from earshot.engines.providers.upload import multipart_request
from earshot.errors import ProviderError, UnsupportedByModelError
from earshot.languages import normalize_language

OPENAI_BASE_URL = "https://api.openai.com/v1"
# OpenAI's and Groq's (free tier) upload limit.
DEFAULT_MAX_UPLOAD_BYTES = 25 * 1000 * 1000

# The extensions OpenAI's transcription endpoint reads (it picks the decoder by the file name), by the format
# names ``audio_convert.describe_format`` gives.
_ACCEPTED_SUFFIXES = {
    "flac": "flac",
    "m4a": "m4a",
    "mp3": "mp3",
    "mp4": "mp4",
    "ogg": "ogg",
    "wav": "wav",
    "webm": "webm",
}
_CONTENT_TYPES = {"flac": "audio/flac", "mp3": "audio/mpeg", "wav": "audio/wav"}

# Upstream Whisper servers (large-v3) also know Cantonese, which the embedded models' table lacks.
_UPSTREAM_ONLY = {"yue": "yue", "cantonese": "yue"}
# Whisper's tokenizer calls Javanese "jw"; the upstream APIs take ISO-639-1 "jv".
_ISO_CODES = {"jw": "jv"}


def language_code(value: str | None) -> str | None:
    """An ISO-639 code for a language a Whisper upstream names (``"english"``, ``"English"``, ``"en"``, ``"en-US"``).

    Returns None when ``value`` is empty or names no language Whisper knows (``earshot.languages`` is the table).
    """
    if not value:
        return None
    lowered = value.strip().lower().replace("_", "-")
    if lowered in _UPSTREAM_ONLY or lowered.split("-")[0] in _UPSTREAM_ONLY:
        return _UPSTREAM_ONLY.get(lowered) or _UPSTREAM_ONLY[lowered.split("-")[0]]
    code = normalize_language(lowered)
    return _ISO_CODES.get(code, code) if code else None


class _WireWord(BaseModel):
    word: str
    start: float
    end: float


class _WireSegment(BaseModel):
    id: int | None = None
    seek: int = 0
    start: float
    end: float
    text: str
    tokens: list[int] = []
    temperature: float | None = None
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    no_speech_prob: float | None = None


class _WireTranscription(BaseModel):
    """``verbose_json`` (and plain ``json``, which has only ``text``)."""

    text: str
    language: str | None = None
    duration: float | None = None
    segments: list[_WireSegment] | None = None
    words: list[_WireWord] | None = None


class OpenAITranscriptionEngine(UpstreamEngine):
    """``TranscriptionEngine`` for OpenAI's ``/audio/transcriptions`` and ``/audio/translations`` wire format.

    Asks for ``verbose_json`` with segment (and, when requested, word) timestamps. OpenAI's GPT-4o transcribe
    models only answer plain ``json``: for them the transcript is one segment spanning the audio, and word
    timestamps and translation are refused before any work. Audio in a format the endpoint does not read, or
    over its upload limit, is re-encoded to 16 kHz mono FLAC (or MP3 when FLAC is still too large).

    Parameters
    ----------
    max_upload_bytes
        The largest audio file sent; larger audio is re-encoded, or refused (25 MB, OpenAI's and Groq's limit).
    **options
        ``UpstreamOptions``; ``base_url`` is the ``.../v1`` root (Groq's is ``https://api.groq.com/openai/v1``),
        ``upstream_model`` a Whisper model (``whisper-1``, ``whisper-large-v3``), and the API key goes as
        ``Authorization: Bearer``.
    """

    default_base_url = OPENAI_BASE_URL
    default_model = "whisper-1"
    default_provider = "OpenAI"

    def __init__(self, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, **options: Unpack[UpstreamOptions]) -> None:
        super().__init__(**options)
        self._max_upload_bytes = max_upload_bytes

    def check(self, options: TranscriptionOptions) -> None:
        """Refuse what the upstream would refuse: unknown languages, and what JSON-only models cannot do."""
        model = options.upstream_model or self._model
        if options.language and language_code(options.language) is None:
            raise UnsupportedByModelError(f"language {options.language!r} is not one Whisper knows", param="language")
        if _json_only(model):
            if options.word_timestamps:
                raise UnsupportedByModelError(
                    "this model does not give word timestamps; use a Whisper model", param="timestamp_granularities"
                )
            if options.task == "translate":
                raise UnsupportedByModelError("this model does not translate; use a Whisper model", param="model")

    def transcribe(self, audio: Path, options: TranscriptionOptions) -> Transcript:
        """Send ``audio`` to the upstream and map its answer to a ``Transcript``."""
        self.check(options)
        model = options.upstream_model or self._model
        prepared = prepare_audio(
            audio,
            accepted=_ACCEPTED_SUFFIXES,
            targets=("flac", "mp3"),
            max_bytes=self._max_upload_bytes,
            upstream=self._provider,
            known=options.known_audio,
        )
        suffix = _ACCEPTED_SUFFIXES[prepared.format]
        content_type = _CONTENT_TYPES.get(prepared.format, "application/octet-stream")
        verbose = not _json_only(model)
        translate = options.task == "translate"

        fields: dict[str, str | list[str]] = {
            "model": model,
            "response_format": "verbose_json" if verbose else "json",
            "temperature": repr(options.temperature),
        }
        if options.prompt:
            fields["prompt"] = options.prompt
        if not translate:  # the translations endpoint takes neither
            if options.language:
                fields["language"] = language_code(options.language) or options.language
            if verbose:
                fields["timestamp_granularities[]"] = ["segment", "word"] if options.word_timestamps else ["segment"]
        url = f"{self._base_url}/audio/{'translations' if translate else 'transcriptions'}"

        with prepared.open() as audio_file:  # streamed from disk in 1 MiB pieces; each attempt rewinds it

            def build() -> httpx.Request:
                return multipart_request(
                    url,
                    headers={"authorization": f"Bearer {self._api_key}", "accept": "application/json"},
                    fields=fields,
                    file_field="file",
                    filename=f"audio.{suffix}",
                    file=audio_file,
                    content_type=content_type,
                )

            payload = self._call(build, deadline_sec=self._deadline_sec(options))
        try:
            wire = _WireTranscription.model_validate(payload)
        except ValidationError as exc:
            raise ProviderError(f"{self._provider} answered with an unexpected transcription shape") from exc

        language = "en" if translate else language_code(wire.language) or language_code(options.language) or "und"
        duration = wire.duration or prepared.duration_sec
        return _to_transcript(wire, language=language, duration=duration, with_words=options.word_timestamps)


def _json_only(model: str) -> bool:
    # OpenAI's GPT-4o transcribe family answers json/text only: no verbose_json, no timestamps, no translations.
    return model.startswith(("gpt-4o", "gpt-transcribe"))


def _to_transcript(wire: _WireTranscription, *, language: str, duration: float | None, with_words: bool) -> Transcript:
    text = wire.text.strip()
    words = [Word(word=w.word, start=w.start, end=w.end) for w in wire.words or []] if with_words else []
    if wire.segments:
        segments = [
            Segment(
                id=index,
                seek=seg.seek,
                start=seg.start,
                end=seg.end,
                text=seg.text,
                tokens=seg.tokens,
                temperature=seg.temperature,
                avg_logprob=seg.avg_logprob,
                compression_ratio=seg.compression_ratio,
                no_speech_prob=seg.no_speech_prob,
            )
            for index, seg in enumerate(wire.segments)
        ]
    elif text and duration:
        segments = [Segment(id=0, start=0.0, end=duration, text=text)]
    else:
        segments = []
    _attach_words(segments, words)
    return Transcript(text=text, language=language, segments=segments, words=words)


def _attach_words(segments: list[Segment], words: list[Word]) -> None:
    """Give each segment the words that start inside it (Whisper's API lists words apart from segments)."""
    if not segments:
        return
    index = 0
    for word in words:
        while index + 1 < len(segments) and word.start >= segments[index + 1].start:
            index += 1
        segments[index].words.append(word)
