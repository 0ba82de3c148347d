"""The embedded ``AudioQuestionEngine``: answers composed from measured facts, no upstream.

One decoding pass feeds the acoustic analyzer and the ears (Silero VAD, the YAMNet sound-event tagger unless the
catalog switches it off, GE2E speakers when the question is about them or the answer is JSON); the configured
transcription SKU (the catalog's ``transcribe`` alias, through the ``TranscriptionEngine`` interface) gives the
words when there is speech. ``earshot.engines.facts`` turns all that into an answer or, in JSON mode, into the
facts themselves.

When the ears cannot load (onnxruntime or the model packages are missing from this environment), it answers from
the acoustic analyzer alone, as before them, and says so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from earshot.engines.analyzer import analyze_audio, answer_question, extract_facts
from earshot.engines.base import Transcript, TranscriptionEngine, TranscriptionOptions
from earshot.engines.providers import FinishReason, GenerationResult
from earshot.errors import EngineError, ProviderTimeoutError

# Below this much speech (VAD seconds), running the recogniser only produces noise words.
_MIN_SPEECH_SEC = 0.5
_SPEAKER_QUESTION = ("speaker", "who", "how many", "people", "person", "turn", "voices", "conversation", "diariz")

# (engine, catalog SKU, the languages it knows or None for many), or None when no transcription SKU is configured.
SpeechSource = Callable[[], "tuple[TranscriptionEngine, str, Sequence[str] | None] | None"]


class AnalyzerQuestionEngine:
    def __init__(self, speech: SpeechSource, *, sound_events: bool = True) -> None:
        self._speech = speech
        self._sound_events = sound_events

    def _ears(self) -> Any:
        from earshot.engines.hearing import get_ears

        ears = get_ears(sound_events=self._sound_events)
        ears.vad  # noqa: B018  (load now: a missing runtime or package shows here, not halfway through)
        if self._sound_events:
            ears.tagger  # noqa: B018
        return ears

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
        try:
            ears = self._ears()
        except (ImportError, EngineError):
            text = self._acoustics_only(audio, question, json_mode=json_mode, deadline_sec=deadline_sec)
        else:
            text = self._from_facts(ears, audio, question, json_mode=json_mode, deadline_sec=deadline_sec)
        finish: FinishReason = "stop"
        if max_tokens is not None and not json_mode:
            words = text.split()
            if len(words) > max_tokens:  # a word is at least a token: never exceed what was asked
                text, finish = " ".join(words[:max_tokens]), "length"
        return GenerationResult(text=text, finish_reason=finish)

    def _transcribe(self, audio: Path, deadline_sec: float) -> tuple[Transcript | None, Any]:
        source = self._speech()
        if source is None:
            return None, None
        from earshot.engines.facts import Recogniser

        engine, sku, languages = source
        try:
            transcript = engine.transcribe(audio, TranscriptionOptions(deadline_sec=deadline_sec))
        except ProviderTimeoutError:
            return None, None  # the facts then say the words were not transcribed; the rest is still measured
        return transcript, Recogniser(sku=sku, languages=languages)

    def _from_facts(self, ears: Any, audio: Path, question: str, *, json_mode: bool, deadline_sec: float) -> str:
        from earshot.engines.facts import answer_from_facts, facts_document, gather_facts, music_spans

        lowered = question.lower()
        speakers = json_mode or any(word in lowered for word in _SPEAKER_QUESTION) or len(lowered.split()) <= 3
        heard: dict[str, Any] = {}

        def content_from(pcm: Any) -> tuple[list[tuple[float, float]], list[tuple[float, float]] | None]:
            hearing = ears.hear(pcm, speakers=speakers)
            heard["hearing"] = hearing
            return [(r.start, r.end) for r in hearing.speech], music_spans(hearing)

        started = time.monotonic()
        report = analyze_audio(audio, content_from=content_from)
        hearing = heard["hearing"]
        transcript, recogniser = (None, None)
        if hearing.speech_seconds >= _MIN_SPEECH_SEC:
            transcript, recogniser = self._transcribe(audio, deadline_sec - (time.monotonic() - started))
        facts = gather_facts(report, hearing, transcript, recogniser)
        if json_mode:
            return json.dumps(facts_document(facts, question), ensure_ascii=False)
        return answer_from_facts(facts, report, question)

    def _acoustics_only(self, audio: Path, question: str, *, json_mode: bool, deadline_sec: float) -> str:
        report = analyze_audio(audio)
        transcript = None
        if report.content.speech >= 0.15:
            found, _ = self._transcribe(audio, deadline_sec)
            transcript = found.text if found is not None and found.text else None
        if json_mode:
            facts = extract_facts(report, question, transcript)
            facts["not_measured"] = ["voice activity, sound events and speakers (their models are not installed here)"]
            return json.dumps(facts, ensure_ascii=False)
        return (
            answer_question(report, question, transcript)
            + " (The voice-activity, sound-event and speaker models are not installed in this environment.)"
        )
