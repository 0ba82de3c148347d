"""Embedded engines behind light proxies: requests are checked without importing the audio stack.

PocketSphinx, PyAV and numpy live in the ``audio`` Lambda layer, which only the functions that run
engines carry. A function that only *checks* a request (``POST /v1/uploads`` with a ``process``
spec, say) gets the proxy's cheap ``check`` and never imports them; ``transcribe``/``ask`` build the
real engine on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from earshot.engines.base import Transcript, TranscriptionOptions, check_english_only
from earshot.engines.providers import GenerationResult


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


class LazyPocketsphinx(_Lazy):
    """``TranscriptionEngine`` for ``embedded:pocketsphinx``."""

    def __init__(self) -> None:
        def build() -> Any:
            from earshot.engines.pocketsphinx_engine import PocketsphinxEngine

            return PocketsphinxEngine()

        super().__init__(build)

    def check(self, options: TranscriptionOptions) -> None:
        check_english_only(options)

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
