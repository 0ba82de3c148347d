"""Length lies the first hostile corpus did not tell: frame numbers in native FLAC, and ``stts`` in mp4 files whose
audio is not AAC (Opus, FLAC, ALAC, PCM), which were billed by the durations the sample table declares.

Each file is encoded here with PyAV and patched byte by byte; the bill must follow the frames, not the header.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from audio_fixtures import decoded_duration, encode_tone
from hostile_audio import claim_seconds, flac_of_silence, renumber_flac_frames

from earshot.config import get_settings
from earshot.errors import InvalidAudioError
from earshot.metering import meter_duration

TEN_HOURS = 36_000.0
RATE = 16_000


def _encode(
    path: Path, container: str, codec: str, seconds: float, rate: int = RATE, options: dict[str, str] | None = None
) -> Path:
    return encode_tone(path, container, codec, seconds, rate, options)


def _meter(path: Path) -> float:
    return meter_duration(path, ffprobe=get_settings().resolved_ffprobe()).seconds


@pytest.fixture(scope="module")
def flac(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _encode(tmp_path_factory.mktemp("flac") / "a.flac", "flac", "flac", 3.0).read_bytes()


def test_flac_whose_last_frames_claim_hours_bills_its_frames(flac: bytes, tmp_path: Path) -> None:
    honest = tmp_path / "honest.flac"
    honest.write_bytes(flac)
    assert _meter(honest) == pytest.approx(3.0, abs=1e-6)
    lying = tmp_path / "lying.flac"
    # Frames numbered as if hours of audio came before them: the file still plays 3 s.
    lying.write_bytes(renumber_flac_frames(flac, {-2: 100_000, -1: 100_001}))
    assert decoded_duration(lying) == pytest.approx(3.0, abs=1e-6)
    assert _meter(lying) == pytest.approx(3.0, abs=1e-6)


@pytest.mark.parametrize("numbers", [{1: 5}, {1: 0, 2: 0}, {-1: 0, -2: 0}])
def test_flac_frames_bill_where_they_are_whatever_their_numbers(
    flac: bytes, numbers: dict[int, int], tmp_path: Path
) -> None:
    lying = tmp_path / "lying.flac"
    lying.write_bytes(renumber_flac_frames(flac, numbers))
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


@pytest.mark.parametrize(("codec", "rate"), [("alac", 44_100), ("flac", 44_100), ("libopus", 48_000)])
@pytest.mark.parametrize("edit_list", [True, False])
def test_lossless_and_opus_mp4_bill_to_the_sample(codec: str, rate: int, edit_list: bool, tmp_path: Path) -> None:
    """Apple Lossless, FLAC and Opus in MP4 (identified in-process): the last ALAC frame's own sample count, FLAC's
    block sizes, Opus packets less the edit list's priming and padding, or without one the ``dOps`` pre-skip (what
    the decoder drops then)."""
    options = {} if edit_list else {"use_editlist": "0"}
    path = encode_tone(tmp_path / "a.mp4", "mp4", codec, 45.3, rate, options, layout="stereo")
    assert (b"elst" in path.read_bytes()) == edit_list
    # With an edit list, what it keeps (PyAV's decode keeps the Opus end padding the list trims).
    expected = int(45.3 * rate) / rate if edit_list else decoded_duration(path)
    assert _meter(path) == pytest.approx(expected, abs=1e-9)


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


# What a browser's MediaRecorder writes as video/mp4: movie fragments, each with its own sample table (trun).
FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "frag_duration": "500000"}


def _scale_fragment_durations(data: bytes, factor: int) -> bytes:
    """Every ``trun`` sample duration, ``tfhd`` default duration and ``trex`` default duration times ``factor``."""
    out = bytearray(data)

    def walk(start: int, end: int) -> None:
        position = start
        while position + 8 <= end:
            size, kind = struct.unpack_from(">I4s", out, position)
            if size < 8:
                return
            body = position + 8
            if kind in (b"moov", b"mvex", b"moof", b"traf"):
                walk(body, position + size)
            elif kind == b"trex":
                struct.pack_into(">I", out, body + 12, struct.unpack_from(">I", out, body + 12)[0] * factor)
            elif kind == b"tfhd":
                flags, at = int.from_bytes(out[body + 1 : body + 4], "big"), body + 8
                at += (8 if flags & 1 else 0) + (4 if flags & 2 else 0)
                if flags & 8:
                    struct.pack_into(">I", out, at, struct.unpack_from(">I", out, at)[0] * factor)
            elif kind == b"trun":
                flags, count = (
                    int.from_bytes(out[body + 1 : body + 4], "big"),
                    struct.unpack_from(">I", out, body + 4)[0],
                )
                at = body + 8 + (4 if flags & 1 else 0) + (4 if flags & 4 else 0)
                width = 4 * bin(flags & 0xF00).count("1")
                if flags & 0x100:
                    for index in range(count):
                        value = struct.unpack_from(">I", out, at + index * width)[0]
                        struct.pack_into(">I", out, at + index * width, value * factor)
            position += size

    walk(0, len(out))
    return bytes(out)


@pytest.mark.parametrize(
    ("codec", "rate", "frame"),
    [("libopus", 48_000, 0.020), ("flac", RATE, 4608 / RATE), ("alac", RATE, 4096 / RATE), ("aac", RATE, 1024 / RATE)],
)
def test_fragmented_mp4_bills_its_samples_whatever_trun_says(
    codec: str, rate: int, frame: float, tmp_path: Path
) -> None:
    honest = _encode(tmp_path / "honest.mp4", "mp4", codec, 3.0, rate, FRAGMENTED)
    assert abs(_meter(honest) - 3.0) <= 2 * frame + 1e-6  # was refused as empty (Opus, FLAC, ALAC)
    lying = tmp_path / "lying.mp4"
    lying.write_bytes(_scale_fragment_durations(honest.read_bytes(), 10_000))
    assert abs(_meter(lying) - 3.0) <= 2 * frame + 1e-6


def test_a_flac_of_hours_in_little_data_is_metered_frame_by_frame(tmp_path: Path) -> None:
    """Two hours of silence in 180 kB (14,062 frames of 13 bytes): every frame counts, read at numpy's pace."""
    path = tmp_path / "bomb.flac"
    path.write_bytes(flac_of_silence(2.0))
    assert _meter(path) == pytest.approx(14_062 * 4096 / 8000, abs=1e-6)


@pytest.mark.parametrize("codec", ["adpcm_ms", "adpcm_ima_wav"])
def test_adpcm_wav_bills_its_blocks(codec: str, tmp_path: Path) -> None:
    """Was counted as ffprobe's packets times the first packet's length: a 20 s MS ADPCM file billed 20.36 s."""
    honest = _encode(tmp_path / "a.wav", "wav", codec, 20.0)
    played = decoded_duration(honest)
    assert _meter(honest) == pytest.approx(played, abs=1e-3)
    lying = tmp_path / "lying.wav"
    lying.write_bytes(claim_seconds(honest.read_bytes(), "wav", TEN_HOURS))
    assert _meter(lying) == pytest.approx(played, abs=1e-3)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(honest.read_bytes()[: len(honest.read_bytes()) * 6 // 10])
    assert 0 < _meter(cut) <= decoded_duration(cut) + 1e-6
