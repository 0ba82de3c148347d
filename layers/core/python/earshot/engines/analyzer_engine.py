"""The embedded ``AudioQuestionEngine``: measured acoustics plus the embedded transcript, no upstream.

It answers from what it measured and says what it cannot determine; in JSON mode it returns the
measured facts as a JSON document.
"""

from __future__ import annotations

import json
from pathlib import Path

from earshot.engines.analyzer import analyze_audio, answer_question, extract_facts
from earshot.engines.base import TranscriptionOptions
from earshot.engines.providers import FinishReason, GenerationResult

# Below this share of speech, running the recogniser only produces noise words.
_MIN_SPEECH_SHARE = 0.15


class AnalyzerQuestionEngine:
    def __init__(self) -> None:
        from earshot.engines.pocketsphinx_engine import PocketsphinxEngine

        self._speech = PocketsphinxEngine()

    def _transcript(self, audio: Path, speech_share: float | None, deadline_sec: float) -> str | None:
        if speech_share is None or speech_share < _MIN_SPEECH_SHARE:
            return None
        transcript = self._speech.transcribe(audio, TranscriptionOptions(deadline_sec=deadline_sec))
        return transcript.text or None

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
        report = analyze_audio(audio)
        transcript = self._transcript(audio, report.content.speech, deadline_sec)
        if json_mode:
            text = json.dumps(extract_facts(report, question, transcript), ensure_ascii=False)
        else:
            text = answer_question(report, question, transcript)
        finish: FinishReason = "stop"
        if max_tokens is not None and not json_mode:
            words = text.split()
            if len(words) > max_tokens:  # a word is at least a token: never exceed what was asked
                text, finish = " ".join(words[:max_tokens]), "length"
        return GenerationResult(text=text, finish_reason=finish)
