"""Spoken-word fixtures synthesised at test time with espeak-ng (never committed).

``speak`` says a sentence into a file in any of ``SPEECH_FORMATS``; ``speak_sentences`` says several with
exact digital silence between them. Tests that use them skip when espeak-ng is not installed
(``requires_espeak``); CI installs it with apt.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest

SPEECH_FORMATS: tuple[str, ...] = ("wav", "mp3", "flac", "ogg")

# espeak-ng's Klatt-synthesiser variant: recognisers hear it better than the default formant voice.
DEFAULT_VOICE = "en-us+klatt4"
DEFAULT_WORDS_PER_MINUTE = 150

# (container, codec, sample rate or None to keep espeak's 22.05 kHz)
_ENCODINGS: dict[str, tuple[str, str, int | None]] = {
    "mp3": ("mp3", "libmp3lame", None),
    "flac": ("flac", "flac", None),
    # No libvorbis in PyAV's wheel; Opus is what Ogg voice notes carry anyway, and it takes 48 kHz.
    "ogg": ("ogg", "libopus", 48_000),
}


def have_espeak() -> bool:
    """Whether the espeak-ng command is on ``PATH``."""
    return shutil.which("espeak-ng") is not None


requires_espeak = pytest.mark.skipif(not have_espeak(), reason="espeak-ng is not installed (apt-get install espeak-ng)")


def speak(
    path: Path,
    text: str,
    *,
    fmt: str = "wav",
    voice: str = DEFAULT_VOICE,
    words_per_minute: int = DEFAULT_WORDS_PER_MINUTE,
) -> Path:
    """Say ``text`` with espeak-ng into ``path``.

    Parameters
    ----------
    path
        Where to write; the container is chosen by ``fmt``, not the suffix.
    text
        What to say.
    fmt
        One of ``SPEECH_FORMATS``: espeak-ng's own 22.05 kHz mono wav, or that re-encoded with PyAV.
    voice, words_per_minute
        espeak-ng's ``-v`` and ``-s``.

    Returns
    -------
    Path
        ``path``, for chaining.
    """
    _check_format(fmt)
    if fmt == "wav":
        _espeak(path, text, voice=voice, words_per_minute=words_per_minute)
        return path
    with tempfile.TemporaryDirectory() as tmp:
        wav = _espeak(Path(tmp) / "speech.wav", text, voice=voice, words_per_minute=words_per_minute)
        samples, rate = _read_pcm(wav)
    return _write(path, samples, rate, fmt=fmt)


def speak_sentences(
    path: Path,
    sentences: Sequence[str],
    *,
    pause_sec: float,
    fmt: str = "wav",
    voice: str = DEFAULT_VOICE,
) -> Path:
    """Say each of ``sentences``, separated by ``pause_sec`` of digital silence, into one file.

    espeak-ng's own trailing silence stays in, so the gap a listener hears is a little longer than
    ``pause_sec``; ``spoken_spans`` tells where each sentence's samples are.
    """
    _check_format(fmt)
    pieces: list[npt.NDArray[np.int16]] = []
    rate = 0
    with tempfile.TemporaryDirectory() as tmp:
        for index, sentence in enumerate(sentences):
            wav = _espeak(Path(tmp) / f"{index}.wav", sentence, voice=voice, words_per_minute=DEFAULT_WORDS_PER_MINUTE)
            samples, rate = _read_pcm(wav)
            if pieces:
                pieces.append(np.zeros(round(pause_sec * rate), dtype=np.int16))
            pieces.append(samples)
    return _write(path, np.concatenate(pieces), rate, fmt=fmt)


def _check_format(fmt: str) -> None:
    if fmt not in SPEECH_FORMATS:
        raise ValueError(f"unknown fmt {fmt!r}; expected one of {', '.join(SPEECH_FORMATS)}")


def _espeak(path: Path, text: str, *, voice: str, words_per_minute: int) -> Path:
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(path), "--", text],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path


def _read_pcm(path: Path) -> tuple[npt.NDArray[np.int16], int]:
    """Mono int16 samples of ``path`` at its own rate."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        chunks = [
            out.to_ndarray().reshape(-1)
            for frame in [*container.decode(stream), None]
            for out in resampler.resample(frame)
        ]
    return np.concatenate(chunks), rate


def _write(path: Path, samples: npt.NDArray[np.int16], rate: int, *, fmt: str) -> Path:
    container, codec, codec_rate = ("wav", "pcm_s16le", None) if fmt == "wav" else _ENCODINGS[fmt]
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    frame.pts = 0
    frame.time_base = Fraction(1, rate)
    frames = [frame]
    if codec_rate is not None and codec_rate != rate:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=codec_rate)
        frames = [*resampler.resample(frame), *resampler.resample(None)]
    with av.open(str(path), mode="w", format=container) as out:
        stream: Any = out.add_stream(codec, rate=codec_rate or rate)
        stream.layout = "mono"
        for each in frames:
            out.mux(stream.encode(each))  # PyAV re-frames to the codec's frame size
        out.mux(stream.encode(None))
    return path
