"""Embedded engines behind light proxies: requests are checked without importing the audio stack.

faster-whisper, CTranslate2, PyAV and numpy are heavy, and only the functions that run engines carry them. A
function that only *checks* a request (``POST /v1/uploads`` with a ``process`` spec, say) gets the proxy's cheap
``check`` and never imports them; ``transcribe``/``ask`` build the real engine on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from earshot.engines.base import Transcript, TranscriptionOptions
from earshot.engines.providers import GenerationResult
from earshot.engines.whisper_capabilities import (
    DEFAULT_SPEECH_ASSET,
    LANGUAGE_ID_ASSET,
    WHISPER_MODELS,
    WhisperCapabilities,
    check_whisper_request,
)

__all__ = [
    "DEFAULT_SPEECH_ASSET",
    "LANGUAGE_ID_ASSET",
    "WHISPER_MODELS",
    "LazyAnalyzer",
    "LazyWhisper",
    "WhisperCapabilities",
    "check_whisper_request",
]


class _Lazy:
    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._engine: Any = None
        self._lock = threading.Lock()

    def _real(self) -> Any:
        with self._lock:
            if self._engine is None:
                self._engine = self._build()
            return self._engine


class LazyWhisper(_Lazy):
    """``TranscriptionEngine`` for ``embedded:whisper``; ``check`` needs neither numpy nor the model."""

    def __init__(self, *, sku: str, asset: str, languages: Sequence[str] | None = None) -> None:
        capabilities = WhisperCapabilities.of(sku, asset, languages)

        def build() -> Any:
            from earshot.engines.whisper_engine import WhisperEngine

            return WhisperEngine(capabilities)

        super().__init__(build)
        self.capabilities = capabilities

    def check(self, options: TranscriptionOptions) -> None:
        check_whisper_request(self.capabilities, options)

    def transcribe(self, audio: Path, options: TranscriptionOptions) -> Transcript:
        transcript: Transcript = self._real().transcribe(audio, options)
        return transcript


class LazyAnalyzer(_Lazy):
    """``AudioQuestionEngine`` for ``embedded:analyzer``.

    ``speech`` gives the transcription engine to hear words with (the catalog's ``transcribe`` SKU), its SKU and
    languages, or None; ``sound_events`` is the catalog's switch for the sound-event tagger.
    """

    def __init__(self, speech: Callable[[], Any] | None = None, *, sound_events: bool = True) -> None:
        def build() -> Any:
            from earshot.engines.analyzer_engine import AnalyzerQuestionEngine

            return AnalyzerQuestionEngine(speech or (lambda: None), sound_events=sound_events)

        super().__init__(build)

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
        result: GenerationResult = self._real().ask(
            audio,
            question,
            system=system,
            max_tokens=max_tokens,
            temperature=temperature,
            json_mode=json_mode,
            deadline_sec=deadline_sec,
        )
        return result
