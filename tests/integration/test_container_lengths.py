"""Containers beyond the audio-only ones, metered in-process from the audio actually present: mp4/mov with a video
track, other codecs in mp4 (ADPCM, AMR), CAF, MPEG program and transport streams.

Every file is encoded here with PyAV and then made hostile byte by byte: a header claiming ten hours or one second,
a cut at 40 %, junk. The metered length must be what PyAV decodes, to one codec frame, whatever the headers say.
"""

from __future__ import annotations

import mmap
import random
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from audio_fixtures import decoded_duration, decoded_tolerantly, encode_tone, metered, write_audio, written
from hostile_audio import claim_seconds, truncate

from earshot.audio.lengths import compiled, mpeg_streams
from earshot.audio.lengths.common import AudioLength
from earshot.audio.lengths.identify import identify
from earshot.audio.lengths.mp4 import _amr_samples
from earshot.audio.lengths.mpeg_streams import mpegts_length
from earshot.errors import InvalidAudioError

TEN_HOURS = 36_000.0
AAC_FRAME = 1024 / 44100


_meter, _write = metered, written


def _decoded_tolerantly(path: Path) -> float:
    samples, rate = decoded_tolerantly(path)
    return samples / rate if rate else 0.0


def _identified(path: Path) -> bool:
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return identify(data) is not None


# --- mp4 with a video track ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mp4_video(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A 20 s tone as mp4 with a video track, its sample table first ("faststart") and last (PyAV's default)."""
    folder = tmp_path_factory.mktemp("mp4_video")
    return {
        fmt: write_audio(folder / fmt, fmt=fmt, seconds=20.0, kind="noise").read_bytes()
        for fmt in ("mp4_video", "mp4_video_faststart")
    }


@pytest.mark.parametrize("fmt", ["mp4_video", "mp4_video_faststart"])
def test_mp4_with_video_is_metered_in_process_by_its_audio_track(
    fmt: str, mp4_video: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "a.mp4", mp4_video[fmt])
    monkeypatch.setattr("earshot.metering._run_ffprobe", _no_ffprobe)
    metered = _meter(path)
    assert (metered.source, metered.codec, metered.has_video) == ("frames", "aac", True)
    assert abs(metered.seconds - decoded_duration(path)) <= AAC_FRAME


@pytest.mark.parametrize("fmt", ["mp4_video", "mp4_video_faststart"])
@pytest.mark.parametrize("claim", [TEN_HOURS, 1.0])
def test_mp4_with_video_whose_headers_lie_bills_its_audio_samples(
    fmt: str, claim: float, mp4_video: dict[str, bytes], tmp_path: Path
) -> None:
    """mvhd, mdhd, stts and the edit list of both tracks claim ``claim`` seconds."""
    honest = _write(tmp_path, "honest.mp4", mp4_video[fmt])
    lying = _write(tmp_path, "lying.mp4", claim_seconds(mp4_video[fmt], "mp4_video", claim))
    assert _identified(lying)
    assert abs(_meter(lying).seconds - decoded_duration(honest)) <= 2 * AAC_FRAME


def test_a_cut_mp4_with_video_bills_the_audio_left(mp4_video: dict[str, bytes], tmp_path: Path) -> None:
    cut = _write(tmp_path, "cut.mp4", truncate(mp4_video["mp4_video_faststart"], 0.4))
    metered = _meter(cut).seconds
    assert 6.0 <= metered <= 10.0
    assert abs(metered - _decoded_tolerantly(cut)) <= 2 * AAC_FRAME
    # The sample table written last: a cut file has none, nothing decodes, and nothing is billed.
    with pytest.raises(InvalidAudioError):
        _meter(_write(tmp_path, "cut-end.mp4", truncate(mp4_video["mp4_video"], 0.4)))


def test_junk_in_an_mp4_with_video_adds_nothing(mp4_video: dict[str, bytes], tmp_path: Path) -> None:
    original = mp4_video["mp4_video_faststart"]
    honest = _meter(_write(tmp_path, "honest.mp4", original)).seconds
    junk = random.Random(3).randbytes(200_000)
    assert _meter(_write(tmp_path, "tail.mp4", original + junk)).seconds == honest
    # Junk written over the media data: the same samples are there (however they decode), no more.
    middle = len(original) // 2
    overwritten = original[:middle] + junk[:10_000] + original[middle + 10_000 :]
    assert _meter(_write(tmp_path, "over.mp4", overwritten)).seconds == honest


def _audio_stsc(data: bytearray) -> int:
    """Where the audio track's ``stsc`` starts (its size field) in ``mp4_video_faststart``: the first track's."""
    return data.index(b"stsc") - 4


def test_a_sample_table_whose_first_run_starts_late_bills_what_ffmpeg_reads(
    mp4_video: dict[str, bytes], tmp_path: Path
) -> None:
    """``stsc``'s first run starting at chunk 2: ffmpeg gives the chunks before it that run's samples per chunk."""
    out = bytearray(mp4_video["mp4_video_faststart"])
    stsc = _audio_stsc(out)
    runs = struct.unpack_from(">I", out, stsc + 12)[0]
    assert runs > 2 and struct.unpack_from(">III", out, stsc + 16 + 12)[0] == 2  # the second run starts at chunk 2
    # Drop the first run: the second (1 sample a chunk, from chunk 2) now covers chunk 1 too. The sample chunk 1 no
    # longer holds (its second) leaves ``stsz`` too, so every other sample keeps its bytes.
    table = out[stsc + 16 + 12 : stsc + 16 + 12 * runs]
    out[stsc + 16 : stsc + 16 + 12 * runs] = table + bytes(12)
    struct.pack_into(">I", out, stsc + 12, runs - 1)
    stsz = out.index(b"stsz") - 4
    assert struct.unpack_from(">I", out, stsz + 12)[0] == 0  # one size per sample
    count = struct.unpack_from(">I", out, stsz + 16)[0]
    sizes = out[stsz + 20 : stsz + 20 + 4 * count]
    out[stsz + 20 : stsz + 20 + 4 * count] = sizes[:4] + sizes[8:] + bytes(4)
    struct.pack_into(">I", out, stsz + 16, count - 1)
    late = _write(tmp_path, "late.mp4", bytes(out))
    honest = _meter(_write(tmp_path, "honest.mp4", mp4_video["mp4_video_faststart"]))
    metered = _meter(late)
    assert metered.source == "frames"
    assert metered.seconds < honest.seconds  # chunk 1 holds one sample now
    assert abs(metered.seconds - _decoded_tolerantly(late)) <= AAC_FRAME


@pytest.mark.parametrize("field", ["count above 2^31", "runs out of order", "run past the last chunk"])
def test_a_sample_table_ffmpeg_rewrites_is_left_to_ffprobe(
    field: str, mp4_video: dict[str, bytes], tmp_path: Path
) -> None:
    """Tables ffmpeg "repairs" as it reads them are not guessed at: the packets ffprobe counts are billed (or the file
    is refused when it counts none)."""
    out = bytearray(mp4_video["mp4_video_faststart"])
    stsc = _audio_stsc(out)
    runs = struct.unpack_from(">I", out, stsc + 12)[0]
    if field == "count above 2^31":
        for run in range(runs):
            struct.pack_into(">I", out, stsc + 16 + 12 * run + 4, 0xFFFFFFF0)
    elif field == "runs out of order":
        struct.pack_into(">I", out, stsc + 16 + 12, 7)  # the second run starts after the third
    else:
        struct.pack_into(">I", out, stsc + 16 + 12 * (runs - 1), 10_000)
    path = _write(tmp_path, "table.mp4", bytes(out))
    honest = _meter(_write(tmp_path, "honest.mp4", mp4_video["mp4_video_faststart"])).seconds
    try:
        metered = _meter(path)
    except InvalidAudioError:
        return  # ffprobe found nothing to count: refused, nothing billed
    assert metered.source == "packets"
    # Never more than the frames there: ffprobe's packets include the priming and padding the edit list trims.
    assert 0 < metered.seconds <= honest + 2 * AAC_FRAME


def test_a_constant_sample_size_claiming_billions_of_samples_is_not_sized_in_memory(
    mp4_video: dict[str, bytes], tmp_path: Path
) -> None:
    """``stsz`` of one size for 2^32 - 1 samples: ffmpeg indexes none of them, nothing decodes, nothing is billed;
    and the walk never builds a table of 4 billion rows."""
    import tracemalloc

    out = bytearray(mp4_video["mp4_video_faststart"])
    stsz = out.index(b"stsz") - 4
    struct.pack_into(">II", out, stsz + 12, 100, 0xFFFFFFFF)
    path = _write(tmp_path, "billions.mp4", bytes(out))
    tracemalloc.start()
    try:
        with pytest.raises(InvalidAudioError):
            _meter(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000
    assert _decoded_tolerantly(path) == 0.0
    # The same size for as many samples as the chunks hold: each 100 bytes the file has is a packet.
    count = int(np.frombuffer(mp4_video["mp4_video_faststart"], dtype=np.uint8).size)  # more than the chunks hold
    struct.pack_into(">II", out, stsz + 12, 100, count)
    sized = _write(tmp_path, "sized.mp4", bytes(out))
    assert _meter(sized).seconds > 0


# --- other codecs in mp4/mov/3gp: counted by what each packet's bytes decode to, not by stts -----------------------
OTHER_CODECS = [
    ("mov", "adpcm_ima_qt", 44_100, 64),
    ("3gp", "libopencore_amrnb", 8000, 160),
    ("3g2", "libopencore_amrnb", 8000, 160),
]
FASTSTART = {"movflags": "faststart"}


@pytest.mark.parametrize(("container", "codec", "rate", "frame"), OTHER_CODECS)
def test_other_codecs_in_mp4_bill_their_packets_whatever_the_headers_claim(
    container: str, codec: str, rate: int, frame: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    honest = encode_tone(tmp_path / f"honest.{container}", container, codec, 12.0, rate, FASTSTART)
    decoded = _decoded_tolerantly(honest)
    with monkeypatch.context() as patched:
        patched.setattr("earshot.metering._run_ffprobe", _no_ffprobe)
        metered = _meter(honest)
    assert metered.source == "frames"
    assert abs(metered.seconds - decoded) <= frame / rate
    for claim in (TEN_HOURS, 1.0):  # mvhd, mdhd, stts and the edit list all lie
        lying = _write(tmp_path, f"lying.{container}", claim_seconds(honest.read_bytes(), "m4a", claim))
        assert abs(_meter(lying).seconds - decoded) <= frame / rate
    cut = _write(tmp_path, f"cut.{container}", truncate(honest.read_bytes(), 0.4))
    assert 3.0 < _meter(cut).seconds <= 0.4 * 12.0 + frame / rate
    assert abs(_meter(cut).seconds - _decoded_tolerantly(cut)) <= frame / rate
    tail = _write(tmp_path, f"tail.{container}", honest.read_bytes() + random.Random(5).randbytes(50_000))
    assert _meter(tail).seconds == metered.seconds


def _quicktime_sound_layout(data: bytes, samples: int, packet: int, packets: int) -> bytes:
    """An IMA4 mov rewritten to QuickTime's old layout: stts one tick per PCM frame, stsz counting PCM frames."""
    out = bytearray(data)
    stts, stsz, stsc = (out.index(kind) + 4 for kind in (b"stts", b"stsz", b"stsc"))
    assert struct.unpack_from(">III", out, stts + 4) == (1, packets, packet)
    struct.pack_into(">II", out, stts + 8, samples, 1)
    struct.pack_into(">II", out, stsz + 4, 1, samples)
    assert struct.unpack_from(">I", out, stsc + 4)[0] == 1  # one run of chunks
    struct.pack_into(">I", out, stsc + 12, struct.unpack_from(">I", out, stsc + 12)[0] * packet)
    return bytes(out)


def test_ima4_in_quicktimes_old_layout_bills_the_blocks_present(tmp_path: Path) -> None:
    """stts of one tick per sample: ffmpeg reads whole chunks, whose size the packet layout gives; a chunk cut by the
    end of the file bills its whole blocks only."""
    honest = encode_tone(tmp_path / "a.mov", "mov", "adpcm_ima_qt", 6.0, 8000, FASTSTART).read_bytes()
    stsz = honest.index(b"stsz") + 4
    packets = struct.unpack_from(">I", honest, stsz + 8)[0]
    old = _write(tmp_path, "old.mov", _quicktime_sound_layout(honest, packets * 64, 64, packets))
    assert _meter(old).seconds == pytest.approx(_decoded_tolerantly(old), abs=1e-9)
    assert _meter(old).seconds == pytest.approx(packets * 64 / 8000, abs=1e-9)
    cut = _write(tmp_path, "cut.mov", truncate(old.read_bytes(), 0.5))
    assert abs(_meter(cut).seconds - _decoded_tolerantly(cut)) <= 64 / 8000


def test_amr_packets_count_the_frames_the_decoder_plays() -> None:
    """One frame per packet, several, a comfort-noise (SID) or NO_DATA frame (the decoder stops there), a cut one."""

    def frame(mode: int, size: int) -> bytes:
        return bytes([mode << 3 | 4]) + bytes(size - 1)

    packets = [
        frame(7, 32),  # 12.2 kbit/s: 160 samples
        frame(0, 13) + frame(7, 32),  # two frames
        frame(8, 6),  # SID: refused by the decoder
        frame(7, 32) + frame(8, 6) + frame(7, 32),  # the decoder stops at the SID frame
        bytes([15 << 3 | 4]),  # NO_DATA
        frame(7, 32)[:20],  # cut short
        frame(7, 32) + b"\0\1",  # a stray tail: no frame
    ]
    data = b"".join(packets)
    sizes = np.asarray([len(packet) for packet in packets], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    assert _amr_samples(data, offsets, sizes, "amr_nb").tolist() == [160, 320, 0, 160, 0, 0, 160]  # type: ignore[arg-type]
    wide = frame(8, 61) + frame(0, 18)
    assert _amr_samples(wide, np.asarray([0]), np.asarray([len(wide)]), "amr_wb").tolist() == [640]  # type: ignore[arg-type]


# --- CAF: the packet table's packets whose bytes are present, each by what its codec decodes it to ---------------
CAF_CODECS = [("alac", 44_100), ("alac", 16_000), ("flac", 44_100), ("pcm_s16be", 16_000), ("adpcm_ima_qt", 44_100)]


def _caf_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, position = [], 8
    while position + 12 <= len(data):
        size = struct.unpack_from(">q", data, position + 4)[0]
        chunks.append((data[position : position + 4], data[position : position + 12 + size]))
        position += 12 + size
    return chunks


def _pakt_first(data: bytes) -> bytes:
    """The same CAF with its packet table before the audio data (as a streaming writer puts it): a cut keeps it."""
    chunks = sorted(_caf_chunks(data), key=lambda chunk: chunk[0] == b"data")
    return data[:8] + b"".join(body for _, body in chunks)


def _with_pakt_field(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, out.index(b"pakt") + 12 + offset, value)
    return bytes(out)


@pytest.mark.parametrize(("codec", "rate"), CAF_CODECS)
def test_caf_bills_the_packets_present_whatever_the_packet_table_claims(
    codec: str, rate: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was refused as "holds no samples" (ALAC, FLAC): ffprobe lists their packets without durations. Now identified
    and measured in-process."""
    original = encode_tone(tmp_path / "a.caf", "caf", codec, 7.3, rate).read_bytes()
    honest = _write(tmp_path, "honest.caf", _pakt_first(original) if b"pakt" in original else original)
    decoded = _decoded_tolerantly(honest)
    with monkeypatch.context() as patched:
        patched.setattr("earshot.metering._run_ffprobe", _no_ffprobe)
        metered = _meter(honest)
    assert (metered.source, metered.codec) == ("frames", codec)
    assert metered.seconds == pytest.approx(decoded, abs=1e-9)
    cut = _write(tmp_path, "cut.caf", truncate(honest.read_bytes(), 0.4))
    assert 2.0 < _meter(cut).seconds < 3.0
    assert _meter(cut).seconds == pytest.approx(_decoded_tolerantly(cut), abs=1e-9)
    tail = _write(tmp_path, "tail.caf", honest.read_bytes() + random.Random(7).randbytes(30_000))
    assert _meter(tail).seconds == metered.seconds  # the data chunk's size bounds the packets, not the file's end
    if b"pakt" not in original:  # constant packets (PCM, IMA4): no packet table to lie with
        return
    for claim in (TEN_HOURS, 1.0):
        lying = _write(tmp_path, "lying.caf", claim_seconds(honest.read_bytes(), "caf", claim))
        assert _meter(lying).seconds == pytest.approx(decoded, abs=1e-9)


@pytest.mark.parametrize("codec", ["alac", "flac"])
def test_caf_packet_table_lies_bill_what_the_decoder_plays(codec: str, tmp_path: Path) -> None:
    """Fewer packets than the data holds (ffmpeg stops at the table's end), priming the decoder drops, and priming or
    remainders too large to believe."""
    honest = _pakt_first(encode_tone(tmp_path / "a.caf", "caf", codec, 7.3, 44_100).read_bytes())
    variants = {
        "ten-packets": _with_pakt_field(honest, 0, ">q", 10),
        "priming": _with_pakt_field(honest, 16, ">i", 2000),
        "remainder": _with_pakt_field(honest, 20, ">i", 700),
    }
    for name, data in variants.items():
        path = _write(tmp_path, f"{name}.caf", data)
        assert _meter(path).seconds == pytest.approx(_decoded_tolerantly(path), abs=1e-9), name
    whole = _meter(_write(tmp_path, "honest.caf", honest)).seconds
    absurd = _write(tmp_path, "absurd.caf", _with_pakt_field(honest, 16, ">i", 10 * 44_100))
    assert _meter(absurd).seconds == whole  # ten seconds of "priming" in a 7 s file is not believed


# --- MPEG program and transport streams: the audio elementary stream's frames -------------------------------------
MPEG_STREAMS = [
    ("mpegts", "aac", 44_100, 1024),
    ("mpegts", "mp2", 44_100, 1152),
    ("mpegts", "libmp3lame", 22_050, 576),
    ("mpeg", "mp2", 44_100, 1152),
    ("mpeg", "libmp3lame", 44_100, 1152),
]


def _claim_fmt(container: str) -> str:
    return "mpegts_video" if container == "mpegts" else "mpeg_video"


@pytest.mark.parametrize(("container", "codec", "rate", "frame"), MPEG_STREAMS)
def test_mpeg_streams_bill_their_audio_frames_whatever_the_timestamps_say(
    container: str, codec: str, rate: int, frame: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    honest = encode_tone(tmp_path / "a", container, codec, 9.0, rate)
    decoded = _decoded_tolerantly(honest)
    with monkeypatch.context() as patched:
        patched.setattr("earshot.metering._run_ffprobe", _no_ffprobe)
        metered = _meter(honest)
    assert (metered.source, metered.format_name) == ("frames", container)
    assert metered.seconds == pytest.approx(decoded, abs=1e-9)  # every frame decodes to its whole length
    for claim in (TEN_HOURS, 1.0):
        lying = _write(tmp_path, "lying", claim_seconds(honest.read_bytes(), _claim_fmt(container), claim))
        assert _meter(lying).seconds == metered.seconds
    cut = _write(tmp_path, "cut", truncate(honest.read_bytes(), 0.4))
    assert abs(_meter(cut).seconds - _decoded_tolerantly(cut)) <= frame / rate + 1e-9
    assert 3.0 < _meter(cut).seconds < 4.0
    tail = _write(tmp_path, "tail", honest.read_bytes() + random.Random(9).randbytes(20_000))
    assert _meter(tail).seconds == metered.seconds


@pytest.mark.parametrize(("codec", "rate"), [("aac", 44_100), ("mp2", 44_100), ("libmp3lame", 22_050)])
def test_transport_stream_shortcut_counts_what_the_joined_stream_walk_counts(
    codec: str, rate: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One frame per PES is read from the PES starts alone (in C, and with numpy); cut anywhere, bit-flipped, with
    audio bytes overwritten inside packets or with a PES holding two frames, the count must be the one the walk of the
    joined elementary stream gives, and within a frame of what PyAV decodes."""
    original = encode_tone(tmp_path / "a.ts", "mpegts", codec, 6.0, rate).read_bytes()
    rng = random.Random(13)
    variants = [original] + [original[: rng.randrange(2000, len(original))] for _ in range(8)]
    for _ in range(4):
        flipped = bytearray(original)
        flipped[rng.randrange(1000, len(original))] ^= 1 << rng.randrange(8)
        variants.append(bytes(flipped))
    for junk in (bytes(100), rng.randbytes(150), b"\xff\xf1" * 50):  # inside an audio packet's payload, sync kept
        damaged = bytearray(original)
        at = len(original) // 2 // 188 * 188
        # An audio packet (PyAV's audio PID): the last bytes of its payload (after any PES header) are overwritten.
        while ((damaged[at + 1] & 0x1F) << 8 | damaged[at + 2]) != 0x100:
            at += 188
        payload = at + 4 + (1 + damaged[at + 4] if damaged[at + 3] & 0x20 else 0)
        payload += 9 + damaged[payload + 8] if damaged[at + 1] & 0x40 else 0
        span = min(len(junk), at + 188 - payload)
        damaged[at + 188 - span : at + 188] = junk[:span]
        variants.append(bytes(damaged))

    def lengths() -> list[AudioLength | None]:
        found = []
        for data in variants:
            path = _write(tmp_path, "variant.ts", data)
            with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                found.append(mpegts_length(mapped, "mp3" if codec == "libmp3lame" else codec, rate))
        return found

    native = lengths()  # the PES read and the stream walked in C
    taken: list[bool] = []
    read_pes_starts = mpeg_streams._ts_one_frame_per_pes

    def recorded(*args: Any) -> Any:
        found = read_pes_starts(*args)
        taken.append(bool(found))
        return found

    with monkeypatch.context() as patched:
        patched.setattr(compiled, "compiled_walkers", lambda: None)
        patched.setattr(mpeg_streams, "_ts_one_frame_per_pes", recorded)
        shortcut = lengths()
        assert taken[0]  # the intact file does take the shortcut
        patched.setattr(mpeg_streams, "_ts_one_frame_per_pes", lambda *args: None)
        assert shortcut == lengths()
    assert native == shortcut
    assert shortcut[0] is not None and shortcut[0].seconds == pytest.approx(_decoded_tolerantly(tmp_path / "a.ts"))
    frame = (1024 if codec == "aac" else 1152 if rate == 44_100 else 576) / rate
    # Damage inside a frame's payload (its header intact) is billed as the frame it still is, though the decoder may
    # refuse it: one frame over at most (docs/decisions.md); the frames around it are billed as decoded.
    for data, length in zip(variants[-3:], native[-3:], strict=True):
        decoded = _decoded_tolerantly(_write(tmp_path, "damaged.ts", data))
        assert length is not None and decoded - 2 * frame - 1e-9 <= length.seconds <= decoded + frame + 1e-9


@pytest.mark.parametrize("codec", ["mp2", "libmp3lame"])
def test_program_stream_walk_in_c_counts_what_the_joined_stream_walk_counts(
    codec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled walk reads the audio PES in place; cut, bit-flipped, with junk between packs or inside a frame, it
    counts what the Python walk of the joined stream counts (or hands the file back to it)."""
    original = encode_tone(tmp_path / "a.mpg", "mpeg", codec, 20.0, 44_100).read_bytes()
    rng = random.Random(17)
    middle = len(original) // 2
    variants = [original] + [original[: rng.randrange(2000, len(original))] for _ in range(6)]
    for _ in range(6):
        flipped = bytearray(original)
        flipped[rng.randrange(1000, len(original))] ^= 1 << rng.randrange(8)
        variants.append(bytes(flipped))
    variants.append(original[:middle] + rng.randbytes(3000) + original[middle:])
    variants.append(original[:middle] + original[middle + 700 :])

    def lengths() -> list[AudioLength | None]:
        found = []
        for data in variants:
            path = _write(tmp_path, "variant.mpg", data)
            with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                found.append(mpeg_streams.mpeg_ps_length(mapped, "mp3" if codec == "libmp3lame" else codec, 44_100))
        return found

    taken: list[bool] = []
    walk_in_c = mpeg_streams._ps_compiled

    def recorded(*args: Any) -> Any:
        found = walk_in_c(*args)
        taken.append(found is not None)
        return found

    monkeypatch.setattr(mpeg_streams, "_ps_compiled", recorded)
    native = lengths()
    assert taken[0]  # the intact file is walked in C
    monkeypatch.setattr(compiled, "compiled_walkers", lambda: None)
    assert native == lengths()
    assert native[0] is not None and native[0].seconds == pytest.approx(_decoded_tolerantly(tmp_path / "a.mpg"))


def test_adts_frames_stating_more_raw_data_blocks_bill_what_ffmpeg_decodes(tmp_path: Path) -> None:
    """An ADTS header may state up to four raw data blocks (4096 samples); ffmpeg's decoder plays one (1024)."""
    honest = encode_tone(tmp_path / "a.ts", "mpegts", "aac", 4.0, 44_100).read_bytes()
    inflated = bytearray(honest)
    at = inflated.find(b"\xff\xf1")
    while at >= 0:  # every ADTS header (sync, MPEG-4, no CRC): raw data blocks 0 -> 3 (four blocks)
        if inflated[at + 6] & 0x03 == 0 and inflated[at + 2] >> 6 == 1:
            inflated[at + 6] |= 0x03
        at = inflated.find(b"\xff\xf1", at + 7)
    path = _write(tmp_path, "inflated.ts", bytes(inflated))
    assert _meter(path).seconds == pytest.approx(_decoded_tolerantly(path), abs=1e-9)
    assert _meter(path).seconds == _meter(_write(tmp_path, "honest.ts", honest)).seconds


@pytest.mark.parametrize("fmt", ["mpegts_video", "mpeg_video"])
def test_junk_inside_an_mpeg_stream_bills_no_more_than_its_frames(fmt: str, tmp_path: Path) -> None:
    """Junk in the middle: a transport stream loses its packet sync (ffprobe then counts its packets), a program stream
    resyncs at the next pack; either way no more than the frames the decoder finds."""
    original = write_audio(tmp_path / "a", fmt=fmt, seconds=9.0, kind="noise").read_bytes()
    honest = _meter(_write(tmp_path, "honest", original)).seconds
    middle = len(original) // 2
    junk = _write(tmp_path, "junk", original[:middle] + random.Random(11).randbytes(5000) + original[middle:])
    metered = _meter(junk).seconds
    assert metered <= honest + 1e-9
    assert abs(metered - _decoded_tolerantly(junk)) <= 2 * 1152 / 44_100


def test_doubtful_mpeg_streams_are_left_to_ffprobe(tmp_path: Path) -> None:
    """AC-3 (a private stream in a program stream, stream type 0x81 in a transport stream) is not read here."""
    for container in ("mpegts", "mpeg"):
        path = encode_tone(tmp_path / container, container, "ac3", 3.0, 48_000)
        assert not _identified(path)
        assert abs(_meter(path).seconds - decoded_duration(path)) <= 1536 / 48_000


def _no_ffprobe(*args: object, **kwargs: object) -> dict[str, object]:
    raise AssertionError("ffprobe was started for a file identified in-process")
