"""Understand and extract answer from measured facts: sirens, music, noise, speech under music, speakers, emotion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recordings import pyannote_sample, requires_pyannote_sample
from sound_fixtures import mix, siren_wail, synth_music, white_noise, write_wav
from speech_fixtures import requires_espeak, speak

from earshot.audio.decode import decode_to_pcm16k
from earshot.engines.analyzer_engine import AnalyzerQuestionEngine
from earshot.engines.embedded import LazyWhisper


def _engine(*, sound_events: bool = True, words: bool = False) -> AnalyzerQuestionEngine:
    whisper = LazyWhisper(sku="whisper-base", asset="whisper-base")
    speech = (lambda: (whisper, "whisper-base", None)) if words else (lambda: None)
    return AnalyzerQuestionEngine(speech, sound_events=sound_events)


def _ask(path: Path, question: str, **kw: bool) -> str:
    return _engine(**kw).ask(path, question, deadline_sec=60).text


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "siren": write_wav(folder / "siren.wav", siren_wail()),
        "noise": write_wav(folder / "noise.wav", white_noise()),
        "music": write_wav(folder / "music.wav", synth_music()),
    }


def test_sirens_are_heard_with_their_times(clips: dict[str, Path]) -> None:
    answer = _ask(clips["siren"], "Are there sirens?")
    assert "Yes: sirens are heard 0:0" in answer
    assert "0% speech" in answer


def test_white_noise_is_not_music(clips: dict[str, Path]) -> None:
    answer = _ask(clips["noise"], "Is music playing? What kind?")
    assert "No music was detected" in answer and "100% music" not in answer
    assert "Yes: noise is heard" in _ask(clips["noise"], "Is there background noise?")


def test_music_is_music_with_a_tempo(clips: dict[str, Path]) -> None:
    answer = _ask(clips["music"], "Is music playing, what kind?")
    assert "Music is playing 0:00-0:08" in answer and "BPM" in answer
    assert "0% speech" in answer


def test_sounds_not_measured_when_the_tagger_is_switched_off(clips: dict[str, Path]) -> None:
    answer = _ask(clips["siren"], "Are there sirens? Is there music?", sound_events=False)
    assert "was not measured" in answer and "Yes: sirens" not in answer
    facts = json.loads(_engine(sound_events=False).ask(clips["siren"], "x", json_mode=True, deadline_sec=60).text)
    assert facts["sound_events"] is None and facts["music"] is None
    assert any("sound events" in item for item in facts["not_measured"])


@requires_espeak
def test_speech_under_music_is_speech_and_emotion_is_only_cues(tmp_path: Path) -> None:
    speech = decode_to_pcm16k(speak(tmp_path / "s.wav", "For too long, I have watched mortals suffer."))
    clip = write_wav(tmp_path / "mixed.wav", mix(speech, synth_music(), background_gain=0.3))
    answer = _ask(clip, "Is anyone speaking?", words=True)
    assert "No speech" not in answer and "Speech takes" in answer
    assert "Transcript (whisper-base" in answer
    mood = _ask(clip, "What is the mood of the speaker?")
    assert "Emotion cannot be told: no emotion model is installed" in mood
    assert "cues only, not an emotion" in mood
    language = _ask(clip, "What language is spoken?", words=True)
    assert "detected English" in language  # Whisper base identifies the language itself


@requires_pyannote_sample
def test_the_call_has_two_speakers_in_answers_and_json(tmp_path: Path) -> None:
    wav, _ = pyannote_sample(tmp_path)
    assert "2 different voices are heard" in _ask(wav, "How many speakers are there?")
    facts = json.loads(_engine().ask(wav, "speakers and events", json_mode=True, deadline_sec=60).text)
    assert facts["speakers"]["count"] == 2
    assert set(facts["speakers"]["talk_time_sec"]) == {"A", "B"}
    assert facts["emotion"] is None
    assert 0.6 < facts["speech"]["share"] < 0.9
    assert any(event["label"] == "Speech" for event in facts["sound_events"])
    assert facts["music"]["present"] is False
