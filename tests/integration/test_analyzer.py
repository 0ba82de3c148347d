"""The embedded acoustic analyzer, on audio the tests synthesise: calibrated tones, clicks, chords, espeak-ng speech.

Levels are checked against their analytical values (ITU-R BS.1770: a full-scale 997 Hz sine reads -3.01 LUFS),
tempo and pitch against what was synthesised, and the speech/music/silence shares against what the audio is.
"""

from __future__ import annotations

import json
import math
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from audio_fixtures import write_audio
from speech_fixtures import requires_espeak, speak

from earshot.engines.analyzer import AcousticReport, analyze_audio, answer_question, extract_facts
from earshot.errors import InvalidAudioError

RATE = 48_000
# BS.1770's -0.691 dB offset cancels the K-weighting's gain at 997 Hz, so a sine of peak amplitude A reads
# 10*log10(A^2 / 2) LUFS per channel: -3.01 LUFS at full scale.
SINE_LUFS_AT_FULL_SCALE = 10 * math.log10(0.5)


def write_wav(path: Path, channels: npt.ArrayLike, rate: int = RATE) -> Path:
    """16-bit PCM WAV (no channel mask, like most tools write) from float samples shaped (channels, n)."""
    samples = np.atleast_2d(np.asarray(channels, dtype=np.float64))
    pcm = np.clip(np.round(samples.T * 32768), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(samples.shape[0])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def seconds(duration: float, rate: int = RATE) -> npt.NDArray[np.float64]:
    return np.arange(round(duration * rate)) / rate


def sine(frequency: float, duration: float, amplitude: float, rate: int = RATE) -> npt.NDArray[np.float64]:
    return amplitude * np.sin(2 * np.pi * frequency * seconds(duration, rate))


def amplitude_for(lufs: float) -> float:
    """Peak amplitude of a mono 997 Hz sine that reads ``lufs``."""
    return 10 ** ((lufs - SINE_LUFS_AT_FULL_SCALE) / 20)


def click_track(bpm: float, duration: float, rate: int = RATE) -> npt.NDArray[np.float64]:
    """A 5-ms decaying noise burst on every beat."""
    track = np.zeros(round(duration * rate))
    length = round(0.005 * rate)
    click = np.random.default_rng(1).uniform(-0.8, 0.8, length) * np.exp(-4 * np.arange(length) / length)
    for beat in np.arange(0, duration - 0.01, 60 / bpm):
        start = round(beat * rate)
        track[start : start + len(click)] += click[: len(track) - start]
    return track


def chords_and_beat(duration: float, rate: int = RATE) -> npt.NDArray[np.float64]:
    """A I-IV-V-vi chord loop (two seconds per chord, partials to the 6th harmonic) over kick, snare and hi-hat at
    120 BPM: what the analyzer should call music."""
    t = seconds(2.0, rate)
    chords = ((261.6, 329.6, 392.0), (349.2, 440.0, 523.3), (392.0, 493.9, 587.3), (220.0, 261.6, 329.6))
    loop = [sum(np.sin(2 * np.pi * f * k * t) / k for f in chord for k in range(1, 7)) / 3 for chord in chords]
    music = np.resize(np.concatenate(loop), round(duration * rate)) * 0.15
    rng = np.random.default_rng(2)
    kick_t = seconds(0.15, rate)
    kick = np.sin(2 * np.pi * np.cumsum(60 + 60 * np.exp(-kick_t / 0.03)) / rate) * np.exp(-kick_t / 0.05)
    snare = rng.standard_normal(round(0.12 * rate)) * np.exp(-seconds(0.12, rate) / 0.03) * 0.3
    hat = np.diff(rng.standard_normal(round(0.04 * rate) + 1)) * np.exp(-seconds(0.04, rate) / 0.01) * 0.15
    for index, beat in enumerate(np.arange(0, duration - 0.2, 0.25)):
        start = round(beat * rate)
        hit = hat if index % 2 else (kick * 0.5 if index % 4 == 0 else snare)
        music[start : start + len(hit)] += hit
    return music


def harmonic_tone(frequency: float, duration: float, rate: int = RATE) -> npt.NDArray[np.float64]:
    t = seconds(duration, rate)
    partials = [np.sin(2 * np.pi * frequency * k * t) / k for k in range(1, 6)]
    tone: npt.NDArray[np.float64] = 0.2 * np.sum(partials, axis=0)
    return tone


def analyze(path: Path) -> AcousticReport:
    return analyze_audio(path)


# --- loudness and peaks ---------------------------------------------------------------------------------------


def test_a_tone_calibrated_to_minus_23_lufs_measures_minus_23(tmp_path: Path) -> None:
    report = analyze(write_wav(tmp_path / "tone.wav", sine(997, 10, amplitude_for(-23.0))))
    assert report.loudness.integrated_lufs == pytest.approx(-23.0, abs=0.5)
    assert report.loudness.integrated_lufs == pytest.approx(-23.0, abs=0.05)  # what the meter actually achieves
    assert report.loudness.sample_peak_dbfs == pytest.approx(-23.0 - SINE_LUFS_AT_FULL_SCALE, abs=0.05)
    assert report.loudness.loudness_range_lu == pytest.approx(0.0, abs=0.1)


def test_a_full_scale_997_hz_sine_reads_minus_3_lufs(tmp_path: Path) -> None:
    report = analyze(write_wav(tmp_path / "full.wav", sine(997, 5, 32767 / 32768)))
    assert report.loudness.integrated_lufs == pytest.approx(-3.01, abs=0.05)
    assert report.loudness.true_peak_dbtp == pytest.approx(0.0, abs=0.1)


def test_a_stereo_sine_at_minus_23_dbfs_per_channel_reads_minus_23_lufs(tmp_path: Path) -> None:
    # EBU Tech 3341, test 1: both channels of a stereo signal count, so each is 3 dB quieter than mono.
    tone = sine(1000, 20, 10 ** (-23 / 20))
    report = analyze(write_wav(tmp_path / "stereo.wav", [tone, tone]))
    assert report.loudness.integrated_lufs == pytest.approx(-23.0, abs=0.1)


def test_surround_channels_weigh_more_and_the_lfe_not_at_all(tmp_path: Path) -> None:
    tone, quiet = sine(997, 5, amplitude_for(-23.0)), np.zeros(5 * RATE)

    def in_channel(index: int) -> AcousticReport:
        channels = [tone if channel == index else quiet for channel in range(6)]
        return analyze(write_wav(tmp_path / f"ch{index}.wav", channels))

    front, back, lfe = in_channel(0), in_channel(4), in_channel(3)
    assert front.channel_layout == "5.1"
    assert front.loudness.integrated_lufs == pytest.approx(-23.0, abs=0.05)
    assert back.loudness.integrated_lufs == pytest.approx(-23.0 + 10 * math.log10(1.41), abs=0.05)
    assert lfe.loudness.integrated_lufs is None


def test_silence_is_all_silence_and_has_no_loudness(tmp_path: Path) -> None:
    report = analyze(write_wav(tmp_path / "silence.wav", np.zeros(3 * RATE)))
    assert report.content.silence == pytest.approx(1.0)
    assert report.loudness.integrated_lufs is None
    assert report.loudness.sample_peak_dbfs is None
    assert report.pitch is None and report.tempo.bpm is None
    answer = answer_question(report, "How loud is it, and is there any silence?", None)
    assert "digital silence" in answer
    json.dumps(extract_facts(report, "loudness", None), allow_nan=False)


def test_a_clipped_square_wave_is_detected_as_clipping(tmp_path: Path) -> None:
    clipped = np.clip(sine(200, 2, 4.0), -1.0, 1.0)
    report = analyze(write_wav(tmp_path / "clipped.wav", clipped))
    assert report.clipping.detected
    assert report.clipping.clipped_runs >= 2 * 200 * 2 - 2  # a flat top on every half cycle
    assert report.clipping.clipped_sample_share > 0.5
    assert "Clipping was detected" in answer_question(report, "Is the audio clipped or distorted?", None)


def test_a_clean_sine_is_not_clipping(tmp_path: Path) -> None:
    report = analyze(write_wav(tmp_path / "clean.wav", sine(200, 2, 0.5)))
    assert not report.clipping.detected
    assert report.clipping.clipped_sample_share == 0.0


# --- tempo, pitch, content ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bpm", [90, 120, 140])
def test_a_click_track_has_its_tempo(tmp_path: Path, bpm: int) -> None:
    report = analyze(write_wav(tmp_path / "clicks.wav", click_track(bpm, 12)))
    assert report.tempo.bpm == pytest.approx(bpm, abs=2)
    assert report.tempo.confidence > 0.8


def test_a_harmonic_tone_has_its_pitch(tmp_path: Path) -> None:
    report = analyze(write_wav(tmp_path / "a3.wav", harmonic_tone(220, 3)))
    assert report.pitch is not None
    assert report.pitch.median_hz == pytest.approx(220, rel=0.01)
    assert report.pitch.p10_hz == pytest.approx(220, rel=0.02)
    assert report.pitch.p90_hz == pytest.approx(220, rel=0.02)
    assert report.tempo.bpm is None  # a steady tone has no beat
    assert report.content.music < 0.5  # nor is it music: nothing changes


def test_noise_has_no_pitch_no_tempo_and_is_neither_speech_nor_music(tmp_path: Path) -> None:
    noise = np.random.default_rng(3).uniform(-0.3, 0.3, 5 * RATE)
    report = analyze(write_wav(tmp_path / "noise.wav", noise))
    assert report.pitch is None
    assert report.tempo.bpm is None
    assert report.content.other > 0.9


@pytest.fixture(scope="module")
def speech_report(tmp_path_factory: pytest.TempPathFactory) -> AcousticReport:
    text = (
        "The quarterly report shows that revenue grew by twelve percent while costs stayed flat. "
        "Our team will present the details on Monday morning."
    )
    return analyze(speak(tmp_path_factory.mktemp("speech") / "speech.wav", text))


@pytest.fixture(scope="module")
def music_report(tmp_path_factory: pytest.TempPathFactory) -> AcousticReport:
    return analyze(write_wav(tmp_path_factory.mktemp("music") / "music.wav", chords_and_beat(16)))


@requires_espeak
def test_speech_is_mostly_speech_with_a_human_pitch(speech_report: AcousticReport) -> None:
    assert speech_report.content.speech > 0.8
    assert speech_report.content.speech > 5 * speech_report.content.music
    assert speech_report.speech_pitch is not None
    assert 70 <= speech_report.speech_pitch.p10_hz <= speech_report.speech_pitch.median_hz
    assert speech_report.speech_pitch.median_hz <= speech_report.speech_pitch.p90_hz <= 400
    assert speech_report.tempo.bpm is None


def test_chords_over_a_beat_are_mostly_music(music_report: AcousticReport) -> None:
    assert music_report.content.music > 0.8
    assert music_report.content.music > 5 * music_report.content.speech
    assert music_report.tempo.bpm == pytest.approx(120, abs=2)


@requires_espeak
def test_speech_then_silence_then_music_shows_on_the_timeline(tmp_path: Path) -> None:
    said = speak(tmp_path / "said.wav", "Good evening. Here is the news, and then some music.")
    with wave.open(str(said)) as spoken:
        rate = spoken.getframerate()
        voice = np.frombuffer(spoken.readframes(spoken.getnframes()), "<i2") / 32768
    audio = np.concatenate([voice, np.zeros(2 * rate), chords_and_beat(8, rate=rate)])
    report = analyze(write_wav(tmp_path / "mixed.wav", audio, rate=rate))
    labels = [span.label for span in report.timeline if span.end - span.start >= 1]
    assert labels[0] == "speech"
    assert labels[-2:] == ["silence", "music"]
    total = len(audio) / rate
    assert report.content.music == pytest.approx(8 / total, abs=0.05)
    assert report.content.speech == pytest.approx(len(voice) / rate / total, abs=0.1)
    assert "In order: speech 0:00" in answer_question(report, "What happens in this clip?", None)


# --- channels, formats, edge cases ---------------------------------------------------------------------------------


def test_stereo_with_different_channels_is_stereo(tmp_path: Path) -> None:
    left = sine(440, 3, 0.3)
    right = np.random.default_rng(4).uniform(-0.1, 0.1, len(left))
    report = analyze(write_wav(tmp_path / "stereo.wav", [left, right]))
    assert (report.channel_layout, report.channels) == ("stereo", 2)
    assert report.stereo is not None
    assert not report.stereo.channels_identical
    assert abs(report.stereo.correlation or 0.0) < 0.05
    assert report.stereo.balance_db is not None and report.stereo.balance_db > 5  # the sine is louder


def test_identical_channels_are_mono_content(tmp_path: Path) -> None:
    tone = sine(440, 2, 0.3)
    report = analyze(write_wav(tmp_path / "dual.wav", [tone, tone]))
    assert report.stereo is not None and report.stereo.channels_identical
    assert "identical" in answer_question(report, "Is it stereo?", None)


def test_mono_has_no_stereo_image(tmp_path: Path) -> None:
    report = analyze(write_wav(tmp_path / "mono.wav", sine(440, 1, 0.3)))
    assert (report.channel_layout, report.channels, report.stereo) == ("mono", 1, None)


def test_a_tenth_of_a_second_does_not_crash(tmp_path: Path) -> None:
    report = analyze(write_wav(tmp_path / "blip.wav", sine(440, 0.1, 0.3)))
    assert report.duration_sec == pytest.approx(0.1, abs=0.001)
    assert report.loudness.integrated_lufs is None  # shorter than one 400-ms gating block
    assert report.loudness.sample_peak_dbfs == pytest.approx(20 * math.log10(0.3), abs=0.05)
    assert "too short" in answer_question(report, "How loud is it?", None)
    json.dumps(extract_facts(report, "everything", None), allow_nan=False)


def test_compressed_audio_in_a_video_container_is_analysed(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "clip.mp4", fmt="mp4_video", seconds=3, kind="tone")
    report = analyze(path)
    assert report.duration_sec == pytest.approx(3, abs=0.1)
    assert report.pitch is not None and report.pitch.median_hz == pytest.approx(440, rel=0.01)


def test_a_file_that_is_not_audio_is_invalid_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio")
    with pytest.raises(InvalidAudioError):
        analyze_audio(path)
    with pytest.raises(InvalidAudioError):
        analyze_audio(tmp_path / "missing.wav")


def test_a_minute_of_stereo_music_is_analysed_whole(tmp_path: Path) -> None:
    """(Its speed, under a tenth of real time, is measured by ``bench/analyzer.py``, not asserted here.)"""
    music = chords_and_beat(60, rate=44_100)
    path = write_wav(tmp_path / "minute.wav", [music, np.roll(music, 441)], rate=44_100)
    report = analyze(path)
    assert report.duration_sec == pytest.approx(60, abs=0.01)


# --- answers -----------------------------------------------------------------------------------------------------


def test_answers_say_what_the_analyzer_cannot_determine(music_report: AcousticReport) -> None:
    answer = answer_question(music_report, "What genre is this and how does it make you feel?", None)
    assert "cannot recognise" in answer
    assert "genres" in answer and "emotions" in answer
    assert "upstream audio model" in answer
    assert "120 BPM" in answer  # and still gives what it measured
    general = answer_question(music_report, "Describe this audio.", None)
    assert "cannot recognise" in general and "upstream audio model" in general


def test_loudness_answers_give_the_measured_loudness(tmp_path: Path) -> None:
    report = analyze(write_wav(tmp_path / "tone.wav", sine(997, 5, amplitude_for(-23.0))))
    answer = answer_question(report, "How loud is this? Is it at broadcast level?", None)
    assert "-23.0 LUFS" in answer
    assert "EBU R 128" in answer


@requires_espeak
def test_speech_answers_quote_the_transcript_and_the_pitch(speech_report: AcousticReport) -> None:
    answer = answer_question(
        speech_report, "What does the speaker say, and in what mood?", "revenue grew by twelve percent"
    )
    assert "revenue grew by twelve percent" in answer
    assert "pitch" in answer
    assert "emotions or mood" in answer and "speakers" in answer


def test_no_transcript_is_quoted_without_speech(music_report: AcousticReport) -> None:
    answer = answer_question(music_report, "What is said?", "la la la")
    assert "la la la" not in answer


@requires_espeak
def test_extracted_facts_are_json_with_the_transcript(speech_report: AcousticReport) -> None:
    facts = extract_facts(speech_report, "Extract the speaker's emotion and the loudness", "hello there")
    document = json.loads(json.dumps(facts, allow_nan=False))
    assert document["transcript"] == "hello there"
    assert document["loudness"]["integrated_lufs"] == speech_report.loudness.integrated_lufs
    assert document["content"]["speech"] > 0.8
    assert document["cannot_determine"] == ["emotions or mood", "speakers (who, how many, their gender or age)"]
