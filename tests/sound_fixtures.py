"""Generated clips for the ears' tests and bench: sirens, noise, music, tones, silence (16 kHz mono int16).

Made here from formulas, never committed. Speech comes from espeak-ng (``speech_fixtures.speak``).
"""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

RATE = 16_000
Pcm = npt.NDArray[np.int16]


def _pcm(signal: npt.NDArray[np.float64], peak: float = 0.5) -> Pcm:
    top = float(np.max(np.abs(signal))) or 1.0
    return np.asarray(np.round(signal / top * peak * 32767), dtype=np.int16)


def _time(seconds: float) -> npt.NDArray[np.float64]:
    return np.arange(round(seconds * RATE)) / RATE


def _harmonics(phase: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    result: npt.NDArray[np.float64] = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.33 * np.sin(3 * phase)
    return result


def siren_wail(seconds: float = 8.0) -> Pcm:
    """An emergency-vehicle wail: a 500-1500 Hz sweep up and down every 6 s, with harmonics."""
    t = _time(seconds)
    frequency = 500 + 1000 * (0.5 - 0.5 * np.cos(2 * np.pi * t / 6))
    return _pcm(_harmonics(2 * np.pi * np.cumsum(frequency) / RATE))


def siren_two_tone(seconds: float = 8.0) -> Pcm:
    """A hi-lo siren: 960 Hz and 770 Hz alternating every half second, with harmonics, clipped as a horn
    loudspeaker driven hard clips (without the clipping YAMNet hears a synthesizer: docs/benchmarks.md)."""
    t = _time(seconds)
    frequency = np.where((t % 1.0) < 0.5, 960.0, 770.0)
    return _pcm(np.clip(2 * _harmonics(2 * np.pi * np.cumsum(frequency) / RATE), -1.0, 1.0))


def white_noise(seconds: float = 8.0) -> Pcm:
    return _pcm(np.random.default_rng(1).standard_normal(len(_time(seconds))), peak=0.9)


def pink_noise(seconds: float = 8.0) -> Pcm:
    white = np.random.default_rng(2).standard_normal(len(_time(seconds)))
    spectrum = np.fft.rfft(white)
    frequencies = np.fft.rfftfreq(len(white), 1 / RATE)
    spectrum[1:] /= np.sqrt(frequencies[1:])
    spectrum[0] = 0
    return _pcm(np.fft.irfft(spectrum, len(white)), peak=0.3)


def tone(seconds: float = 8.0, hz: float = 440.0) -> Pcm:
    return _pcm(np.sin(2 * np.pi * hz * _time(seconds)), peak=0.4)


def silence(seconds: float = 8.0) -> Pcm:
    return np.zeros(len(_time(seconds)), dtype=np.int16)


def synth_music(seconds: float = 8.0) -> Pcm:
    """A four-chord synth loop at 120 BPM with a kick on every beat and a hi-hat between."""
    total = len(_time(seconds))
    music = np.zeros(total)
    rng = np.random.default_rng(3)
    chords = ((261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6), (196.0, 246.9, 293.7))
    beat = RATE // 2
    for index, start in enumerate(range(0, total, beat)):
        length = min(beat, total - start)
        t = np.arange(length) / RATE
        envelope = np.exp(-3 * t)
        for hz in chords[(index // 4) % 4]:
            music[start : start + length] += 0.12 * np.sign(np.sin(2 * np.pi * hz * t)) * envelope
        kick = t[: min(length, int(0.15 * RATE))]
        music[start : start + len(kick)] += (
            0.6 * np.sin(2 * np.pi * 100 * np.exp(-20 * kick) * kick) * np.exp(-25 * kick)
        )
        hat_at = start + beat // 2
        hat = rng.standard_normal(int(0.05 * RATE)) * np.exp(-80 * np.arange(int(0.05 * RATE)) / RATE) * 0.2
        music[hat_at : hat_at + len(hat)] += hat[: max(0, total - hat_at)]
    return _pcm(music, peak=0.8)


def mix(speech: Pcm, background: Pcm, background_gain: float = 0.5) -> Pcm:
    """``speech`` over ``background`` (looped or cut to the speech's length)."""
    repeated = np.resize(background, len(speech)).astype(np.float64)
    return _pcm(speech.astype(np.float64) + background_gain * repeated, peak=0.8)


GENERATED: dict[str, Callable[[], Pcm]] = {
    "siren (wail)": siren_wail,
    "siren (two-tone)": siren_two_tone,
    "white noise": white_noise,
    "pink noise": pink_noise,
    "440 Hz tone": tone,
    "silence": silence,
    "synth music with drums": synth_music,
}


def write_wav(path: Path, pcm: Pcm) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return path


def read_wav(path: Path) -> Pcm:
    from earshot.audio.decode import decode_to_pcm16k

    return decode_to_pcm16k(path)


def rttm_turns(path: Path) -> list[tuple[float, float, str]]:
    """(start, end, speaker) of each SPEAKER line of an RTTM file."""
    turns = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "SPEAKER":
            start, length = float(fields[3]), float(fields[4])
            turns.append((start, start + length, fields[7]))
    return turns


def attributed_share(
    reference: list[tuple[float, float, str]], hypothesis: list[tuple[float, float, str]], step: float = 0.01
) -> float:
    """Share of the reference's speech time whose speaker the hypothesis names, under the best one-to-one mapping
    of hypothesis labels to reference speakers (on a 10-ms grid; overlapped reference speech counts as correct
    when the hypothesis names either speaker)."""
    from itertools import permutations

    end = max(turn[1] for turn in reference)
    grid = np.arange(0.0, end, step) + step / 2
    speakers = sorted({turn[2] for turn in reference})
    reference_masks = {
        s: np.any([(grid >= a) & (grid < b) for a, b, n in reference if n == s], axis=0) for s in speakers
    }
    spoken = np.any(list(reference_masks.values()), axis=0)
    labels = sorted({turn[2] for turn in hypothesis})
    hypothesis_masks = {
        label: np.any([(grid >= a) & (grid < b) for a, b, n in hypothesis if n == label], axis=0) for label in labels
    }
    best = 0
    padded = labels + [None] * max(0, len(speakers) - len(labels))
    for chosen in permutations(padded, len(speakers)):
        correct = np.zeros(len(grid), dtype=bool)
        for speaker, label in zip(speakers, chosen, strict=True):
            if label is not None:
                correct |= reference_masks[speaker] & hypothesis_masks[label]
        best = max(best, int(np.count_nonzero(correct & spoken)))
    return best / max(1, int(np.count_nonzero(spoken)))
