"""The embedded ears on real recordings and generated clips: voice activity, sound events, speakers."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from recordings import librivox, pyannote_sample, requires_pyannote_sample, requires_testdata
from sound_fixtures import GENERATED, attributed_share, mix, rttm_turns, synth_music
from speech_fixtures import requires_espeak, speak

from earshot.audio.decode import decode_to_pcm16k
from earshot.engines.hearing import get_ears
from earshot.engines.sound_events import MUSIC_FAMILY, class_share, events, top_classes
from earshot.engines.speakers import diarize, load_legacy_state_dict
from earshot.engines.vad import SpeechRegion, speech_seconds, split_at_silences
from earshot.engines.weights import ready


@pytest.fixture(scope="module")
def ears():  # type: ignore[no-untyped-def]
    return get_ears()


@pytest.fixture(scope="module")
def espeak_speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    path = speak(
        tmp_path_factory.mktemp("speech") / "speech.wav",
        "For too long, I have watched mortals suffer. Tomorrow we will travel to the coast and see the ocean.",
    )
    return decode_to_pcm16k(path)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_no_speech_is_found_in_sirens_noise_tones_music_or_silence(ears, name: str) -> None:  # type: ignore[no-untyped-def]
    pcm = GENERATED[name]()
    assert speech_seconds(ears.vad.regions(pcm)) == 0.0


@requires_testdata
def test_real_read_speech_is_mostly_speech(ears) -> None:  # type: ignore[no-untyped-def]
    for utterance in librivox():
        pcm = decode_to_pcm16k(utterance.path)
        share = speech_seconds(ears.vad.regions(pcm)) / (len(pcm) / 16_000)
        assert share > 0.6, (utterance.path.name, share)


@requires_espeak
def test_speech_under_music_is_still_speech(ears, espeak_speech: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    pcm = mix(espeak_speech, synth_music(), background_gain=0.3)
    assert speech_seconds(ears.vad.regions(pcm)) / (len(pcm) / 16_000) > 0.5


def test_split_at_silences_cuts_only_in_gaps_and_covers_everything() -> None:
    regions = [SpeechRegion(0.5, 9.0), SpeechRegion(10.0, 25.0), SpeechRegion(26.0, 29.0), SpeechRegion(31.0, 58.0)]
    chunks = split_at_silences(regions, 60.0, max_chunk_sec=20.0)
    assert chunks[0][0] == 0.0 and chunks[-1][1] == 60.0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(chunks))
    assert all(end - start <= 20.0 for start, end in chunks)
    inside_speech = [c for _, c in chunks[:-1] if any(r.start < c < r.end for r in regions)]
    assert inside_speech == [45.5]  # 31-58 s is longer than a chunk: cut at the limit, the only place left
    assert chunks[0] == (0.0, 9.5) and chunks[1] == (9.5, 25.5)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("siren (wail)", {"Siren", "Police car (siren)", "Ambulance (siren)", "Civil defense siren"}),
        ("siren (two-tone)", {"Siren", "Police car (siren)", "Ambulance (siren)", "Civil defense siren"}),
        ("white noise", {"White noise", "Noise", "Static"}),
        ("pink noise", {"Pink noise", "Noise"}),
        ("silence", {"Silence"}),
        ("synth music with drums", {"Music"}),
    ],
)
def test_generated_clips_are_tagged_as_what_they_are(ears, name: str, expected: set[str]) -> None:  # type: ignore[no-untyped-def]
    tags = ears.tagger.scores(GENERATED[name]())
    timeline = events(tags, ears.tagger.labels)
    assert any(event.label in expected and event.end - event.start >= 2.0 for event in timeline), timeline


def test_noise_is_not_music(ears) -> None:  # type: ignore[no-untyped-def]
    for name in ("white noise", "pink noise"):
        assert class_share(ears.tagger.scores(GENERATED[name]()), MUSIC_FAMILY, 0.5) == 0.0


@requires_espeak
def test_speech_is_tagged_speech(ears, espeak_speech: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    tags = ears.tagger.scores(espeak_speech)
    assert top_classes(tags, ears.tagger.labels, 1)[0][0] == "Speech"


def test_the_speaker_encoder_weights_load_without_torch() -> None:
    tensors = load_legacy_state_dict(ready("ge2e") / "pretrained.pt")
    assert tensors["lstm.weight_ih_l0"].shape == (1024, 40)
    assert tensors["lstm.weight_hh_l2"].shape == (1024, 256)
    assert tensors["linear.weight"].shape == (256, 256)
    assert all(np.isfinite(t).all() for t in tensors.values())


@requires_pyannote_sample
def test_the_real_two_speaker_call_is_diarized(ears, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wav, rttm = pyannote_sample(tmp_path)
    pcm = decode_to_pcm16k(wav)
    result = diarize(ears.encoder, pcm, ears.vad.regions(pcm))
    assert result.speaker_count == 2
    hypothesis = [(turn.start, turn.end, str(turn.speaker)) for turn in result.turns]
    # The bench reports the exact figure (docs/benchmarks.md); this guards against regressions.
    assert attributed_share(rttm_turns(rttm), hypothesis) >= 0.8


@requires_espeak
def test_one_voice_is_one_speaker(ears, espeak_speech: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    result = diarize(ears.encoder, espeak_speech, ears.vad.regions(espeak_speech))
    assert result.speaker_count == 1


@requires_pyannote_sample
def test_vad_matches_the_calls_reference_speech(ears, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wav, rttm = pyannote_sample(tmp_path)
    pcm = decode_to_pcm16k(wav)
    regions = ears.vad.regions(pcm)
    grid = np.arange(0, len(pcm) / 16_000, 0.01) + 0.005
    reference = np.any([(grid >= a) & (grid < b) for a, b, _ in rttm_turns(rttm)], axis=0)
    found = np.any([(grid >= r.start) & (grid < r.end) for r in regions], axis=0)
    assert np.mean(reference == found) >= 0.95
