"""In-process identification (``earshot.audio.lengths.identify``) says what ffprobe says, or nothing.

Metering skips ffprobe only for files ``identify`` names (WAV, FLAC, MPEG audio, Ogg, MP4/M4A with one AAC track
and any video tracks, Matroska/WebM with Opus or Vorbis); every name it gives must be ffprobe's own verdict for
the file (demuxer, codec, rate, channels), and anything it is unsure of must be left to ffprobe (``None``).
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

import pytest
from audio_fixtures import FORMATS, encode_tone, ffprobe_names, write_audio
from hostile_audio import LYING_FORMATS, claim_seconds, truncate

from earshot.audio.lengths.identify import identify


def _identify(path: Path) -> tuple[str, str, int, int] | None:
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        found = identify(data)
    return None if found is None else (found.format_name, found.codec, found.sample_rate, found.channels)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("rate", "channels"), [(44100, 1), (16000, 2), (48000, 2)])
def test_what_identify_names_is_what_ffprobe_reports(fmt: str, rate: int, channels: int, tmp_path: Path) -> None:
    path = write_audio(tmp_path / fmt, fmt=fmt, seconds=1.5, sample_rate=rate, channels=channels)
    found = _identify(path)
    assert found == ffprobe_names(path)


@pytest.mark.parametrize("fmt", LYING_FORMATS)
def test_lying_and_cut_files_are_named_as_ffprobe_names_them(fmt: str, tmp_path: Path) -> None:
    original = write_audio(tmp_path / "original", fmt=fmt, seconds=20.0, kind="noise").read_bytes()
    for name, data in (("lying", claim_seconds(original, fmt, 36_000.0)), ("cut", truncate(original, 0.4))):
        path = tmp_path / name
        path.write_bytes(data)
        found = _identify(path)
        assert found is None or found == ffprobe_names(path)  # a cut m4a has lost its moov: ffprobe refuses it


@pytest.mark.parametrize("fmt", ["webm_vorbis", "mka_opus"])
def test_other_matroska_flavours_are_named_as_ffprobe_names_them(fmt: str, tmp_path: Path) -> None:
    path = write_audio(tmp_path / fmt, fmt=fmt, seconds=2.0, sample_rate=48000, channels=2)
    assert _identify(path) == ffprobe_names(path)


@pytest.mark.parametrize(
    ("container", "codec", "rate"),
    [
        ("caf", "alac", 44_100),
        ("caf", "flac", 48_000),
        ("caf", "pcm_s16be", 16_000),
        ("caf", "pcm_s24le", 44_100),
        ("caf", "pcm_f32be", 16_000),
        ("caf", "adpcm_ima_qt", 44_100),
        ("caf", "pcm_mulaw", 8000),
        ("mov", "adpcm_ima_qt", 22_050),
        ("3gp", "libopencore_amrnb", 8000),
        ("mpegts", "aac", 48_000),
        ("mpegts", "mp2", 32_000),
        ("mpegts", "libmp3lame", 22_050),
        ("mpeg", "mp2", 48_000),
        ("mpeg", "libmp3lame", 44_100),
    ],
)
def test_other_containers_are_named_as_ffprobe_names_them(
    container: str, codec: str, rate: int, tmp_path: Path
) -> None:
    path = encode_tone(tmp_path / "a", container, codec, 2.0, rate)
    assert _identify(path) == ffprobe_names(path)


@pytest.mark.parametrize(
    ("container", "codec", "rate"),
    [
        ("ipod", "alac", 44_100),  # Apple Lossless .m4a
        ("mp4", "alac", 16_000),
        ("mp4", "flac", 44_100),
        ("mp4", "flac", 96_000),  # more than the sample entry's 16-bit rate field holds
        ("mp4", "libopus", 48_000),
    ],
)
@pytest.mark.parametrize("layout", ["mono", "stereo"])
def test_lossless_and_opus_mp4_are_named_as_ffprobe_names_them(
    container: str, codec: str, rate: int, layout: str, tmp_path: Path
) -> None:
    path = encode_tone(tmp_path / "a", container, codec, 2.0, rate, layout=layout)
    assert _identify(path) is not None
    assert _identify(path) == ffprobe_names(path)


def _with_streaminfo_rate(mp4: bytes, rate: int) -> bytes:
    """An MP4 FLAC whose ``dfLa`` STREAMINFO states ``rate`` (its frames still state theirs)."""
    info = mp4.index(b"dfLa") + 4 + 4 + 4 + 10  # box type, version/flags, block header, 10 bytes into STREAMINFO
    value = int.from_bytes(mp4[info : info + 8], "big")
    value = value & ((1 << 44) - 1) | rate << 44
    return mp4[:info] + value.to_bytes(8, "big") + mp4[info + 8 :]


@pytest.mark.parametrize(
    ("codec", "patch"),
    [
        ("flac", lambda d: _with_streaminfo_rate(d, 8000)),  # ffprobe reports the frames' 44.1 kHz
        ("flac", lambda d: _patched(d, b"dfLa", b"dfLx")),  # no STREAMINFO
        ("alac", lambda d: _patched(d, b"\0\0\xac\x44\0\0\0", b"\0\0\x3e\x80\0\0\0")),  # entry rate 16 kHz
        ("alac", lambda d: _patched_last(d, b"\0\0\xac\x44", b"\0\0\x3e\x80")),  # cookie rate 16 kHz
        ("libopus", lambda d: _patched(d, b"dOps\0\x01", b"dOps\0\x02")),  # dOps channels against the entry's
    ],
    ids=["flac-streaminfo-rate", "flac-no-dfla", "alac-entry-rate", "alac-cookie-rate", "opus-channels"],
)
def test_doubtful_lossless_and_opus_mp4_are_left_to_ffprobe(codec: str, patch: Any, tmp_path: Path) -> None:
    original = encode_tone(tmp_path / "a", "mp4", codec, 2.0, 48_000 if codec == "libopus" else 44_100)
    assert _identify(original) is not None
    path = tmp_path / "doubtful"
    path.write_bytes(patch(original.read_bytes()))
    assert _identify(path) is None


def _wav_with(tag: int, bits: int) -> bytes:
    fmt = struct.pack("<HHIIHH", tag, 1, 8000, 8000 * bits // 8, bits // 8, bits)
    return b"RIFF" + struct.pack("<I", 36 + 8) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data\0\0\0\0"


@pytest.mark.parametrize(
    "data",
    [
        _wav_with(2, 4),  # ADPCM: a codec ffprobe knows and the walker does not
        _wav_with(1, 12),  # a PCM depth that is no codec
        b"\xff\xf1\x50\x80" + b"\0" * 400,  # ADTS AAC: an MPEG sync, but not MPEG audio
        b"ID3\x04\0\0\0\0\0\0" + b"junk" * 100,  # tags, then no frames
        b"fLaC\0\0\0\x22" + b"\0" * 40,  # STREAMINFO of zeros
        b"OggS\0\x02" + b"\0" * 100,  # an Ogg page that holds nothing
    ],
    ids=["wav-adpcm", "wav-12-bit", "adts", "id3-only", "flac-zeros", "ogg-empty"],
)
def test_anything_doubtful_is_left_to_ffprobe(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "doubtful"
    path.write_bytes(data)
    assert _identify(path) is None


def test_a_second_ogg_stream_is_left_to_ffprobe(tmp_path: Path) -> None:
    """Multiplexed Ogg (here an Opus stream, then another stream's first page) is ffprobe's to pick from."""
    opus = write_audio(tmp_path / "a", fmt="ogg_opus", seconds=1.0).read_bytes()
    first_page_end = opus.index(b"OggS", 4)
    second_bos = bytearray(opus[:first_page_end])
    second_bos[14:18] = b"\x01\x02\x03\x04"  # another serial number
    path = tmp_path / "two-streams.ogg"
    path.write_bytes(opus[:first_page_end] + bytes(second_bos) + opus[first_page_end:])
    assert _identify(path) is None


def _patched(data: bytes, old: bytes, new: bytes) -> bytes:
    """``data`` with the first ``old`` replaced by ``new`` (same length: every box and element size stays right)."""
    assert len(old) == len(new) and old in data
    return data.replace(old, new, 1)


def _patched_last(data: bytes, old: bytes, new: bytes) -> bytes:
    """``data`` with the last ``old`` replaced by ``new`` (same length)."""
    assert len(old) == len(new) and old in data
    at = data.rindex(old)
    return data[:at] + new + data[at + len(old) :]


def _m4a_with_two_tracks(m4a: bytes) -> bytes:
    """The moov's trak box repeated: a second track (here a copy) is ffprobe's to pick from."""
    moov = m4a.index(b"moov") - 4
    moov_size = struct.unpack_from(">I", m4a, moov)[0]
    trak = m4a.index(b"trak", moov) - 4
    trak_box = m4a[trak : trak + struct.unpack_from(">I", m4a, trak)[0]]
    out = m4a[:trak] + trak_box + m4a[trak:]
    return out[:moov] + struct.pack(">I", moov_size + len(trak_box)) + out[moov + 4 :]


@pytest.mark.parametrize(
    ("fmt", "patch"),
    [
        ("m4a", lambda d: _patched(d, b"url \0\0\0\x01", b"url \0\0\0\0")),  # media in another file
        ("m4a", lambda d: _patched(d, b"soun", b"vide")),  # not a sound track
        ("m4a", _m4a_with_two_tracks),
        ("m4a", lambda d: _patched(d, b"stss", b"ctts") if b"stss" in d else _patched(d, b"sgpd", b"ctts")),
        ("m4a", lambda d: _patched(d, b"esds", b"esdx")),  # no decoder configuration
        ("m4a", lambda d: d[:4] + b"moof" + d[8:]),  # fragmented
        ("mp4_video", lambda d: _patched_last(d, b"url \0\0\0\x01", b"url \0\0\0\0")),  # video in another file
        ("mp4_video", lambda d: _patched(d, b"vide", b"text")),  # a text track beside the audio
        ("mp4_video", lambda d: _patched(d, b"stss", b"stzz")),  # an unknown box in the video's sample table
        ("mp4_video", lambda d: _patched(d, b"soun", b"vide")),  # no sound track at all
        ("webm", lambda d: _patched(d, b"\x83\x81\x02", b"\x83\x81\x01")),  # track type video
        ("webm", lambda d: _patched(d, b"\x11\x4d\x9b\x74", b"\x19\x41\xa4\x69")),  # seek head: attachments
        ("webm", lambda d: _patched(d, b"\x56\xaa", b"\x6d\x80")),  # content encodings (rewritten blocks)
        ("webm", lambda d: _patched(d, b"webm", b"webp")),  # another doctype
        ("webm", lambda d: _patched(d, b"A_OPUS", b"A_OPUX")),  # another codec
        ("webm", lambda d: _patched(d, b"OpusHead", b"OpusHeaX")),
    ],
    ids=[
        "m4a-external",
        "m4a-video",
        "m4a-two-tracks",
        "m4a-unknown-box",
        "m4a-no-esds",
        "m4a-moof",
        "mp4-video-external",
        "mp4-text-track",
        "mp4-video-unknown-box",
        "mp4-no-sound",
        "webm-video",
        "webm-attachments",
        "webm-encoded",
        "webm-doctype",
        "webm-codec",
        "webm-opushead",
    ],
)
def test_doubtful_mp4_and_matroska_are_left_to_ffprobe(fmt: str, patch: Any, tmp_path: Path) -> None:
    path = tmp_path / "doubtful"
    original = write_audio(tmp_path / fmt, fmt=fmt, seconds=1.0)
    assert _identify(original) is not None
    path.write_bytes(patch(original.read_bytes()))
    assert _identify(path) is None
