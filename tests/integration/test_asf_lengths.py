"""ASF/WMA metered in-process from the audio blocks the data packets hold, held to what PyAV decodes.

Every file is encoded here with PyAV's WMA encoders (one frame per block, no bit reservoir), then made hostile byte by
byte: File Properties durations and packet counts claiming ten hours or one second, cuts anywhere (at 40 % and 75 %,
and byte by byte through the last packets), junk inside the data and after it, a Data object that claims fewer
bytes, random mutations. What the walk cannot follow (the bit reservoir, WMA Pro, encryption, scrambling, a second
stream, junk between packets) goes to ffprobe, as before.
"""

from __future__ import annotations

import mmap
import random
import struct
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from audio_fixtures import decoded_tolerantly, encode_tone, ffprobe_names, metered, metered_in_process, written
from hostile_audio import claim_seconds, mutated, truncate

from earshot.audio.lengths import compiled
from earshot.audio.lengths.asf import asf_length, identify_asf
from earshot.audio.lengths.common import AudioLength
from earshot.audio.lengths.identify import identify
from earshot.errors import InvalidAudioError

TEN_HOURS = 36_000.0
BIT_RATE = 64_000
FRAME = 2048  # samples per frame at 44.1 kHz
_STREAM_PROPERTIES = bytes.fromhex("9107dcb7b7a9cf118ee600c00c205365")
_DATA = bytes.fromhex("3626b2758e66cf11a6d900aa0062ce6c")
_FILE_PROPERTIES = bytes.fromhex("a1dcab8c47a9cf118ee400c00c205365")


def _tone(path: Path, seconds: float, *, codec: str = "wmav2", rate: int = 44_100) -> Path:
    return encode_tone(path, "asf", codec, seconds, rate, bit_rate=BIT_RATE if rate > 16_000 else 32_000)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """3 s and 100 s of wmav2 at 44.1 kHz."""
    folder = tmp_path_factory.mktemp("asf")
    return _tone(folder / "short.wma", 3.0).read_bytes(), _tone(folder / "long.wma", 100.0).read_bytes()


def _walk(data: bytes, folder: Path, *, numpy_only: bool = False) -> AudioLength | None:
    path = written(folder, "walked.wma", data)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        return asf_length(mapped, "wmav2", 44_100, numpy_only=numpy_only)


def _identified(path: Path) -> object:
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        return identify(mapped)


def _played(path: Path) -> int:
    try:
        return decoded_tolerantly(path)[0]
    except av.FFmpegError:
        return 0


def _stereo(path: Path, codec: str, rate: int, seconds: float) -> Path:
    total = int(seconds * rate)
    with av.open(str(path), "w", format="asf") as out:
        stream = out.add_stream(codec, rate=rate)
        assert isinstance(stream, av.AudioStream)
        stream.layout, stream.bit_rate = "stereo", 128_000
        for offset in range(0, total, 4096):
            count = min(4096, total - offset)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(offset, offset + count) / rate)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.stack([tone, tone[::-1]]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = rate, offset, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("codec", ["wmav1", "wmav2"])
@pytest.mark.parametrize("rate", [8000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000])
def test_wma_is_named_as_ffprobe_names_it_and_metered_in_process_as_pyav_decodes_it(
    codec: str, rate: int, tmp_path: Path
) -> None:
    """Frames of 512, 1024 or 2048 samples by rate and version; PyAV decodes one frame fewer than the blocks."""
    path = _tone(tmp_path / "tone.wma", 4.0, codec=codec, rate=rate)
    found = metered_in_process(path)
    samples, played_rate = decoded_tolerantly(path)
    assert played_rate == rate
    assert found.seconds == pytest.approx(samples / rate, abs=1e-9)


@pytest.mark.parametrize(("codec", "rate"), [("wmav1", 22_050), ("wmav2", 44_100)])
def test_stereo_is_metered_as_decoded(codec: str, rate: int, tmp_path: Path) -> None:
    path = _stereo(tmp_path / "stereo.wma", codec, rate, 5.0)
    assert ffprobe_names(path) == ("asf", codec, rate, 2)
    found = metered(path)
    assert (found.source, found.channels) == ("frames", 2)
    samples, _ = decoded_tolerantly(path)
    assert found.seconds == pytest.approx(samples / rate, abs=1e-9)


@pytest.mark.parametrize("blocks", [2, 3, 5])
@pytest.mark.parametrize("tail", [0, 100, 400])
def test_objects_of_several_blocks_split_across_packets_count_every_whole_block(
    blocks: int, tail: int, encoded: tuple[bytes, bytes], tmp_path: Path
) -> None:
    """A media object of several blocks (fragmented over packets) decodes block by block; a rest shorter than a block
    is refused by the decoder, a rest of zeros as long as one decodes to a silent frame."""
    source = written(tmp_path, "source.wma", encoded[0])
    path = tmp_path / "grouped.wma"
    with av.open(str(source)) as original, av.open(str(path), "w", format="asf") as out:
        audio = original.streams.audio[0]
        stream = out.add_stream_from_template(audio)
        packets = [packet for packet in original.demux(audio) if packet.size]
        group = packets[:0]
        for index, packet in enumerate(packets):
            group.append(packet)
            if len(group) == blocks or index == len(packets) - 1:
                joined = av.Packet(b"".join(bytes(part) for part in group) + b"\0" * tail)
                joined.pts = joined.dts = group[0].pts
                joined.time_base, joined.stream = group[0].time_base, stream
                out.mux(joined)
                group = []
    found = _walk(path.read_bytes(), tmp_path)
    assert found is not None
    assert found.samples == decoded_tolerantly(path)[0]


@pytest.mark.parametrize(("claim", "original"), [(TEN_HOURS, 0), (1.0, 1)], ids=["claims-10h", "claims-1s"])
def test_headers_claiming_ten_hours_or_one_second_bill_the_audio_present(
    claim: float, original: int, encoded: tuple[bytes, bytes], tmp_path: Path
) -> None:
    honest = decoded_tolerantly(written(tmp_path, "honest.wma", encoded[original]))[0]
    lying = written(tmp_path, "lying.wma", claim_seconds(encoded[original], "asf", claim))
    assert lying.read_bytes() != encoded[original]
    assert decoded_tolerantly(lying)[0] == honest
    found = metered(lying)
    assert found.source == "frames"
    assert found.seconds == pytest.approx(honest / 44_100, abs=1e-9)


def _with_presentation_times(data: bytes, rewrite: Callable[[int], int]) -> bytes:
    """``data`` with every payload's presentation time (its replicated data's second word) rewritten; the layout
    ffmpeg's muxer writes is assumed (and checked): byte-sized object numbers and replicated data lengths, 32-bit
    offsets, 8 bytes of replicated data."""
    out = bytearray(data)
    widths = (0, 1, 2, 4)
    first = out.index(_DATA) + 50
    packet = struct.unpack_from("<I", out, out.index(_FILE_PROPERTIES) + 96)[0]
    for start in range(first, len(out) - packet + 1, packet):
        flags = out[start + 3]
        assert out[start + 4] == 0x5D and flags & 1
        at = start + 5 + widths[(flags >> 5) & 3] + widths[(flags >> 1) & 3]
        at += widths[(flags >> 3) & 3] + 6
        segments, size_width = out[at] & 0x3F, widths[out[at] >> 6]
        at += 1
        for _ in range(segments):
            assert out[at + 6] == 8
            struct.pack_into("<I", out, at + 11, rewrite(struct.unpack_from("<I", out, at + 11)[0]) & 0xFFFFFFFF)
            at += 15 + size_width + int.from_bytes(out[at + 15 : at + 15 + size_width], "little")
    return bytes(out)


@pytest.mark.parametrize("rewrite", ["ten times", "zero", "reversed"])
def test_payload_presentation_times_change_nothing(rewrite: str, encoded: tuple[bytes, bytes], tmp_path: Path) -> None:
    """Timestamps are headers too: PyAV's decode does not follow them, nor does the walk."""
    change: dict[str, Callable[[int], int]] = {
        "ten times": lambda stamp: stamp * 10,
        "zero": lambda stamp: 0,
        "reversed": lambda stamp: 1_000_000 - stamp,
    }
    honest = decoded_tolerantly(written(tmp_path, "honest.wma", encoded[1]))[0]
    path = written(tmp_path, "stamps.wma", _with_presentation_times(encoded[1], change[rewrite]))
    assert path.read_bytes() != encoded[1]
    assert decoded_tolerantly(path)[0] == honest
    assert metered(path).seconds == pytest.approx(honest / 44_100, abs=1e-9)


@pytest.mark.parametrize("fraction", [0.4, 0.75])
def test_a_cut_file_bills_what_decodes(fraction: float, encoded: tuple[bytes, bytes], tmp_path: Path) -> None:
    cut = written(tmp_path, "cut.wma", truncate(encoded[1], fraction))
    found = metered(cut)
    assert found.source == "frames"
    assert 90 * fraction <= found.seconds <= 110 * fraction
    assert found.seconds == pytest.approx(decoded_tolerantly(cut)[0] / 44_100, abs=1e-9)


def test_a_cut_anywhere_in_the_last_packets_bills_what_decodes(encoded: tuple[bytes, bytes], tmp_path: Path) -> None:
    """Cut in a packet's header, in a payload's header, in its data: the walk delivers what ffmpeg's demuxer does."""
    original = encoded[0]
    data = original.index(_DATA) + 50
    packet = struct.unpack_from("<I", original, original.index(bytes.fromhex("a1dcab8c47a9cf118ee400c00c205365")) + 96)
    for end in range(data + 3 * packet[0] - 40, data + 5 * packet[0], 7):
        cut = written(tmp_path, "cut.wma", original[:end])
        found = _walk(cut.read_bytes(), tmp_path)
        assert found is not None
        assert found.samples == _played(cut), end


@pytest.mark.parametrize("where", ["between packets", "inside a packet"])
def test_junk_inside_the_data_goes_to_ffprobe(where: str, encoded: tuple[bytes, bytes], tmp_path: Path) -> None:
    original = encoded[1]
    data = original.index(_DATA) + 50
    packet = struct.unpack_from("<I", original, original.index(bytes.fromhex("a1dcab8c47a9cf118ee400c00c205365")) + 96)
    at = data + 40 * packet[0] + (0 if where == "between packets" else 500)
    junk = bytes(range(256)) * 16
    mangled = original[:at] + junk + original[at:]
    assert _walk(mangled, tmp_path) is None
    found = metered(written(tmp_path, "junk.wma", mangled))
    assert found.source == "packets"


def test_junk_after_the_data_object_adds_nothing(encoded: tuple[bytes, bytes], tmp_path: Path) -> None:
    padded = encoded[1] + bytes(range(256)) * 64
    path = written(tmp_path, "after.wma", padded)
    honest = decoded_tolerantly(written(tmp_path, "honest.wma", encoded[1]))[0]
    assert decoded_tolerantly(path)[0] == honest
    assert metered(path).seconds == pytest.approx(honest / 44_100, abs=1e-9)


def test_a_data_object_claiming_fewer_bytes_bills_what_ffmpeg_reads_of_it(
    encoded: tuple[bytes, bytes], tmp_path: Path
) -> None:
    """ffmpeg's demuxer stops at the Data object's stated end: the walk stops there too, never billing past it."""
    original = bytearray(encoded[1])
    data = original.index(_DATA)
    struct.pack_into("<Q", original, data + 16, len(original) // 3)
    path = written(tmp_path, "short-data.wma", bytes(original))
    found = metered(path)
    assert found.source == "frames"
    assert found.seconds == pytest.approx(decoded_tolerantly(path)[0] / 44_100, abs=1e-9)
    assert found.seconds < 40


def test_the_bit_reservoir_goes_to_ffprobe(encoded: tuple[bytes, bytes], tmp_path: Path) -> None:
    """With the bit reservoir a block is a superframe whose frame count only decoding confirms: not walked."""
    original = bytearray(encoded[0])
    wave = original.index(_STREAM_PROPERTIES) + 24 + 54
    assert struct.unpack_from("<H", original, wave)[0] == 0x161
    struct.pack_into("<H", original, wave + 18 + 4, 0x0003)  # extradata flags: exponent VLC, bit reservoir
    path = written(tmp_path, "reservoir.wma", bytes(original))
    assert _identified(path) is None
    assert _walk(bytes(original), tmp_path) is None
    try:
        found = metered(path)
    except InvalidAudioError:
        return  # the blocks do not decode as superframes: nothing is billed
    assert found.source == "packets"


@pytest.mark.parametrize(
    "change",
    ["wma pro", "content encryption", "scrambled", "two streams", "variable packets", "no error correction"],
)
def test_what_the_walk_does_not_follow_goes_to_ffprobe(
    change: str, encoded: tuple[bytes, bytes], tmp_path: Path
) -> None:
    original = bytearray(encoded[0])
    properties = original.index(_STREAM_PROPERTIES)
    wave = properties + 24 + 54
    if change == "wma pro":
        struct.pack_into("<H", original, wave, 0x162)
    elif change == "content encryption":
        secret = struct.pack("<I", 4) + b"1234" + struct.pack("<I", 4) + b"DRM\0" + struct.pack("<II", 0, 0)
        encryption = bytes.fromhex("fbb31122 23bdd211 b4b700a0 c955fc6e".replace(" ", ""))
        obj = encryption + struct.pack("<Q", 24 + len(secret)) + secret
        original[properties:properties] = obj
        struct.pack_into("<Q", original, 16, struct.unpack_from("<Q", original, 16)[0] + len(obj))
        struct.pack_into("<I", original, 24, struct.unpack_from("<I", original, 24)[0] + 1)
    elif change == "scrambled":
        specific = struct.unpack_from("<I", original, properties + 24 + 40)[0]
        original[wave + specific] = 2
    elif change == "two streams":
        size = struct.unpack_from("<Q", original, properties + 16)[0]
        second = bytearray(original[properties : properties + size])
        struct.pack_into("<H", second, 24 + 48, 2)
        original[properties + size : properties + size] = second
        struct.pack_into("<Q", original, 16, struct.unpack_from("<Q", original, 16)[0] + size)
        struct.pack_into("<I", original, 24, struct.unpack_from("<I", original, 24)[0] + 1)
    elif change == "variable packets":
        file_properties = original.index(bytes.fromhex("a1dcab8c47a9cf118ee400c00c205365"))
        struct.pack_into("<I", original, file_properties + 24 + 68, 100)
    else:
        data = original.index(_DATA) + 50
        original[data] = 0x02  # no error correction bytes: ffmpeg would read this byte as the packet's flags
    path = written(tmp_path, "other.wma", bytes(original))
    assert _identified(path) is None
    if change != "no error correction":
        assert _walk(bytes(original), tmp_path) is None


def test_a_file_without_audio_packets_is_refused_unbilled(encoded: tuple[bytes, bytes], tmp_path: Path) -> None:
    original = encoded[0]
    empty = written(tmp_path, "empty.wma", original[: original.index(_DATA) + 50])
    with pytest.raises(InvalidAudioError):
        metered(empty)
    # The first packet's header (13 bytes), its first payload (17 + 371) and part of the second.
    one_block = written(tmp_path, "one.wma", original[: original.index(_DATA) + 50 + 13 + 388 + 30])
    assert _played(one_block) == 0  # the decoder's two-frame delay swallows a lone block
    walked = _walk(one_block.read_bytes(), tmp_path)
    assert walked is not None and walked.samples == 0
    # Metering then leaves the file to ffprobe, whose packet count bills the block: a frame, in whole milliseconds.
    assert metered(one_block).seconds <= 0.001 * -(-FRAME * 1000 // 44_100)


def test_random_mutations_never_raise_or_bill_more_than_the_file_held(
    encoded: tuple[bytes, bytes], tmp_path: Path
) -> None:
    """Bit flips, overwritten spans, inserted and removed bytes: the walk ends, and it never counts more than the
    original's samples plus one frame; where it walks a file that still parses, it bills what PyAV decodes of it, or
    more only where damaged coded audio makes the decoder drop blocks (not known without decoding)."""
    original = encoded[0]
    honest = _walk(original, tmp_path)
    assert honest is not None and honest.samples == decoded_tolerantly(written(tmp_path, "o.wma", original))[0]
    rng = random.Random(11)
    walked = 0
    for _ in range(300):
        length = _walk(mutated(original, rng), tmp_path)
        if length is not None:
            walked += 1
            assert 0 <= length.samples <= honest.samples + FRAME
    assert walked >= 50


def test_identify_reads_only_the_header(encoded: tuple[bytes, bytes], tmp_path: Path) -> None:
    path = written(tmp_path, "short.wma", encoded[0])
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        found = identify_asf(mapped)
    assert found is not None
    assert (found.format_name, found.codec, found.sample_rate, found.channels, found.has_video) == (
        "asf",
        "wmav2",
        44_100,
        1,
        False,
    )


def _mutations(original: bytes, seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    return [mutated(original, rng, cuts=True) for _ in range(count)]


def test_the_compiled_walk_counts_what_the_numpy_walk_counts(encoded: tuple[bytes, bytes], tmp_path: Path) -> None:
    """``walkers.c``'s packet walk against the numpy one (the reference): on intact files, every cut through the last
    packets, junk inside and a Data object that lies, and 600 mutations (None where the numpy walk says None)."""
    if compiled.compiled_walkers() is None:
        pytest.skip("the compiled walkers are not built")
    original = encoded[0]
    data = original.index(_DATA)
    shorter = bytearray(original)
    struct.pack_into("<Q", shorter, data + 16, len(original) // 3)
    cases = [original, encoded[1], bytes(shorter), original[: len(original) // 2] + b"\x82\0\0" * 300]
    cases += [original[:end] for end in range(len(original) - 7000, len(original), 5)]
    cases += _mutations(original, 23, 600)
    agreed = 0
    for case in cases:
        reference = _walk(case, tmp_path, numpy_only=True)
        walked = _walk(case, tmp_path)
        assert (walked and walked.samples) == (reference and reference.samples)
        agreed += reference is not None
    assert agreed >= len(cases) // 2
