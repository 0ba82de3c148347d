"""Length lies the first hostile corpus did not tell: frame numbers in native FLAC, and ``stts`` in mp4 files whose
audio is not AAC (Opus, FLAC, ALAC, PCM), which were billed by the durations the sample table declares.

Each file is encoded here with PyAV and patched byte by byte; the bill must follow the frames, not the header.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from audio_fixtures import decoded_duration
from hostile_audio import claim_seconds, renumber_flac_frames

from earshot.config import get_settings
from earshot.errors import InvalidAudioError
from earshot.metering import meter_duration

TEN_HOURS = 36_000.0
RATE = 16_000


def _encode(path: Path, container: str, codec: str, seconds: float, rate: int = RATE) -> Path:
    total = int(seconds * rate)
    signal = (0.3 * np.sin(2 * np.pi * 440 * np.arange(total) / rate)).astype(np.float32)
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        for offset in range(0, total, 4096):
            frame = av.AudioFrame.from_ndarray(signal[None, offset : offset + 4096], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, offset, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _meter(path: Path) -> float:
    return meter_duration(path, ffprobe=get_settings().resolved_ffprobe()).seconds


@pytest.fixture(scope="module")
def flac(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _encode(tmp_path_factory.mktemp("flac") / "a.flac", "flac", "flac", 3.0).read_bytes()


def test_flac_whose_last_frames_claim_hours_bills_its_frames(flac: bytes, tmp_path: Path) -> None:
    honest = tmp_path / "honest.flac"
    honest.write_bytes(flac)
    assert _meter(honest) == pytest.approx(3.0, abs=1e-6)
    last = _last_frame(flac)
    lying = tmp_path / "lying.flac"
    # Frames numbered as if hours of audio came before them: the file still plays 3 s.
    lying.write_bytes(renumber_flac_frames(flac, {last - 1: 100_000, last: 100_001}))
    assert decoded_duration(lying) == pytest.approx(3.0, abs=1e-6)
    assert _meter(lying) == pytest.approx(3.0, abs=1e-6)


@pytest.mark.parametrize("numbers", [{1: 5}, {1: 0, 2: 0}, {-1: 0, -2: 0}])
def test_flac_frames_bill_where_they_are_whatever_their_numbers(
    flac: bytes, numbers: dict[int, int], tmp_path: Path
) -> None:
    last = _last_frame(flac)
    lying = tmp_path / "lying.flac"
    lying.write_bytes(renumber_flac_frames(flac, {i % (last + 1): n for i, n in numbers.items()}))
    assert decoded_duration(lying) == pytest.approx(3.0, abs=1e-6)
    assert _meter(lying) == pytest.approx(3.0, abs=1e-6)


def test_flac_stuffed_with_sync_patterns_is_not_billed_for_them(flac: bytes, tmp_path: Path) -> None:
    """Five million stray sync patterns: the walk gives up at its budget and ffprobe's parser decides."""
    cut = flac.index(b"\xff\xf8", flac.index(b"\xff\xf8") + 1)  # after the first frame
    stuffed = tmp_path / "stuffed.flac"
    stuffed.write_bytes(flac[:cut] + b"\xff\xf8" * 5_000_000 + flac[cut:])
    try:
        metered = _meter(stuffed)
    except InvalidAudioError:
        return
    assert metered <= max(decoded_duration(stuffed), 3.0) + 1e-6


def _last_frame(data: bytes) -> int:
    """Index of the last frame ``renumber_flac_frames`` finds (it renumbers nothing when told nothing)."""
    from earshot.audio.lengths.flac import _parse_frame  # the walker's own header parser

    count, position = 0, data.find(b"\xff\xf8")
    while position >= 0:
        count += _parse_frame(data, position) is not None  # type: ignore[arg-type]
        position = data.find(b"\xff\xf8", position + 1)
    return count - 1


@pytest.mark.parametrize(
    ("container", "codec", "rate", "frame"),
    [
        ("mp4", "libopus", 48_000, 0.020),
        ("mp4", "flac", RATE, 4608 / RATE),
        ("mp4", "alac", RATE, 4096 / RATE),
        ("mov", "alac", RATE, 4096 / RATE),
        ("mov", "pcm_s16le", RATE, 1 / RATE),
    ],
)
@pytest.mark.parametrize("claim", [TEN_HOURS, 1.0])
def test_mp4_with_other_codecs_bills_its_samples_not_stts(
    container: str, codec: str, rate: int, frame: float, claim: float, tmp_path: Path
) -> None:
    honest = _encode(tmp_path / f"honest.{container}", container, codec, 3.0, rate)
    assert abs(_meter(honest) - 3.0) <= frame + 1e-6
    lying = tmp_path / f"lying.{container}"
    lying.write_bytes(claim_seconds(honest.read_bytes(), "m4a", claim))
    assert abs(_meter(lying) - 3.0) <= frame + 1e-6


@pytest.mark.parametrize(
    ("container", "codec", "rate"),
    [
        ("wav", "pcm_mulaw", 8000),  # a telephone recording: packets of 1024 bytes rounded 60 s up to 60.416
        ("wav", "pcm_alaw", 8000),
        ("aiff", "pcm_s16be", RATE),
        ("matroska", "pcm_s16le", 48_000),
        ("caf", "pcm_s16le", RATE),
        ("w64", "pcm_s16le", RATE),
        ("au", "pcm_s16be", RATE),
        ("mov", "pcm_s16le", 44_100),
    ],
)
def test_sixty_seconds_of_pcm_in_any_container_bills_one_minute(
    container: str, codec: str, rate: int, tmp_path: Path
) -> None:
    path = _encode(tmp_path / f"a.{container}", container, codec, 60.0, rate)
    assert _meter(path) == pytest.approx(60.0, abs=1e-6)
