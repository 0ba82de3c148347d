"""The compiled frame walkers: loaded where ``make setup`` built them, refused when stale, and fuzzed against the
sequential Python walks (the reference) on randomly mutated files: whatever the bytes, both give the same length.

``EARSHOT_FUZZ_MUTATIONS`` sets the mutated files per source (30 here; the AddressSanitizer run in
docs/benchmarks.md used more).
"""

from __future__ import annotations

import logging
import mmap
import os
import random
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from audio_fixtures import encode_tone, write_audio

from earshot.audio.lengths import avi, compiled, elementary, flac, flv, matroska, mpeg_audio, mpeg_streams, ogg
from earshot.audio.lengths.common import AudioLength

Outcome = AudioLength | str | None
Walker = Callable[[mmap.mmap], AudioLength | None]

_MUTATIONS = int(os.environ.get("EARSHOT_FUZZ_MUTATIONS", "30"))
# format, seconds, walker, the setting that sends the numpy walk to the sequential one (if any), a false sync to plant.
_SOURCES: list[tuple[str, float, Walker, str | None, bytes]] = [
    (
        "mp3",
        20.0,
        lambda data: mpeg_audio.mp3_length(data, "mp3", 44100),
        "earshot.audio.lengths.mpeg_audio._LOCKSTEP_MIN_BYTES",
        b"\xff\xfb\x90\x64",
    ),
    (
        "mp3_vbr",
        20.0,
        lambda data: mpeg_audio.mp3_length(data, "mp3", 44100),
        "earshot.audio.lengths.mpeg_audio._LOCKSTEP_MIN_BYTES",
        b"\xff\xf3\x40\xc4",
    ),
    (
        "webm",
        20.0,
        lambda data: matroska.matroska_length(data, "opus", 48000),
        "earshot.audio.lengths.matroska._RUNS_MIN_BYTES",
        b"\xa3\x90\x81\x00\x00\x80",
    ),
    (
        "webm_noduration",
        20.0,
        lambda data: matroska.matroska_length(data, "opus", 48000),
        "earshot.audio.lengths.matroska._RUNS_MIN_BYTES",
        b"\xa3\x44\x10\x81\x00\x00\x80\xfc",
    ),
    (
        "webm_laced",  # opusenc + mkvmerge --webm: Xiph-laced blocks of 8 packets (_source)
        1200.0,
        lambda data: matroska.matroska_length(data, "opus", 48000),
        "earshot.audio.lengths.matroska._RUNS_MIN_BYTES",
        b"\xa3\x45\xcb\x81\x00\x00\x82\x07",
    ),
    (
        "flac",
        10.0,
        lambda data: flac.flac_length(data, "flac", 44100),
        "earshot.audio.lengths.flac._VECTORISED_MIN_BYTES",
        b"\xff\xf8\x69\x08\x00",
    ),
    # ADTS AAC, AC-3, E-AC-3 (PyAV's encoders, _source): the chain walk against the vectorised one (_chain_samples).
    ("adts_aac", 60.0, lambda data: elementary.elementary_length(data, "aac", 44100), None, b"\xff\xf1\x50\x40"),
    ("ac3", 60.0, lambda data: elementary.elementary_length(data, "ac3", 48000), None, b"\x0b\x77\xac\xbb\x0c\x40"),
    ("eac3", 60.0, lambda data: elementary.elementary_length(data, "eac3", 48000), None, b"\x0b\x77\x00\xbf\x32"),
    # MPEG-TS (AAC, MP2) and MPEG-PS (MP3): the PES read in place in C against the joined streams' numpy/Python walks.
    ("ts_aac", 60.0, lambda data: mpeg_streams.mpegts_length(data, "aac", 44100), None, b"\xff\xf1\x50\x40"),
    ("ts_mp2", 60.0, lambda data: mpeg_streams.mpegts_length(data, "mp2", 44100), None, b"\xff\xfd\x94\x00"),
    ("ps_mp3", 60.0, lambda data: mpeg_streams.mpeg_ps_length(data, "mp3", 44100), None, b"\x00\x00\x01\xc0"),
    # FLV tags and AVI chunks (PyAV's muxers, _source): the chains walked in C against the numpy walks (chains.chain,
    # which test_foreign_containers holds to the sequential one); planted: an audio tag's or chunk's header.
    (
        "flv_aac",
        60.0,
        lambda data: flv.flv_length(data, "aac", 44100),
        None,
        b"\x08\x00\x01\x2c" + bytes(7) + b"\xaf\x01",
    ),
    (
        "flv_mp3",
        60.0,
        lambda data: flv.flv_length(data, "mp3", 44100),
        None,
        b"\x08\x00\x01\xa2" + bytes(7) + b"\x2f\xff",
    ),
    ("avi_mp3", 60.0, lambda data: avi.avi_length(data, "mp3", 44100), None, b"00wb\xa1\x01\x00\x00\xff\xfb"),
    ("avi_pcm", 20.0, lambda data: avi.avi_length(data, "pcm_s16le", 44100), None, b"00wb\x00\x20\x00\x00"),
    ("ogg_opus", 20.0, lambda data: ogg.ogg_length(data, "opus", 48000), None, b"OggS\x00\x00"),
    ("ogg_vorbis", 20.0, lambda data: ogg.ogg_length(data, "vorbis", 44100), None, b"OggS\x00\x04"),
]


def _source(path: Path, fmt: str, seconds: float) -> bytes:
    """The unmutated file: a fixture recipe's, a PyAV tone (raw AAC, AC-3, E-AC-3, MPEG-TS/PS), or (``webm_laced``)
    what opusenc and mkvmerge make of noise."""
    streams = {"adts_aac": ("adts", "aac", 44100), "ac3": ("ac3", "ac3", 48000), "eac3": ("eac3", "eac3", 48000)}
    streams |= {"ts_aac": ("mpegts", "aac", 44100), "ts_mp2": ("mpegts", "mp2", 44100)}
    streams |= {"ps_mp3": ("mpeg", "libmp3lame", 44100)}
    streams |= {"flv_aac": ("flv", "aac", 44100), "flv_mp3": ("flv", "libmp3lame", 44100)}
    streams |= {"avi_mp3": ("avi", "libmp3lame", 44100), "avi_pcm": ("avi", "pcm_s16le", 44100)}
    if fmt in streams:
        return encode_tone(path, *streams[fmt][:2], seconds, streams[fmt][2]).read_bytes()
    if fmt != "webm_laced":
        return write_audio(path, fmt=fmt, seconds=seconds, kind="noise").read_bytes()
    wav = write_audio(path.with_suffix(".wav"), fmt="wav", seconds=seconds, sample_rate=48000, kind="noise")
    opus, webm = path.with_suffix(".opus"), path.with_suffix(".webm")
    subprocess.run(["opusenc", "--quiet", str(wav), str(opus)], check=True, timeout=300)
    subprocess.run(["mkvmerge", "--quiet", "--webm", "-o", str(webm), str(opus)], check=True, timeout=300)
    data = webm.read_bytes()
    assert b"\x81\x00\x00\x82" in data[:100_000]  # Xiph-laced blocks, which the compiled walk now takes
    return data


def _mutated(original: bytes, plant: bytes, rng: random.Random) -> bytes:
    """One to three random edits: bytes overwritten, spans inserted, deleted or copied, a cut, syncs planted."""
    data = bytearray(original)
    for _ in range(rng.randint(1, 3)):
        size = len(data)
        if size < 64:
            break
        at = rng.randrange(size)
        kind = rng.randrange(7)
        if kind == 0:
            for _ in range(rng.randint(1, 16)):
                data[rng.randrange(size)] = rng.randrange(256)
        elif kind == 1:
            data[at:at] = rng.randbytes(rng.randint(1, 3000))
        elif kind == 2:
            del data[at : at + rng.randint(1, 3000)]
        elif kind == 3:
            start = rng.randrange(size)
            data[at:at] = data[start : start + rng.randint(1, 5000)]
        elif kind == 4:
            del data[at:]
        elif kind == 5:
            for _ in range(rng.randint(1, 200)):
                spot = rng.randrange(size)
                data[spot : spot + len(plant)] = plant
        else:
            data[at : at + rng.randint(1, 64)] = b"\xff" * rng.randint(1, 64)
    return bytes(data)


def _outcome(path: Path, data: bytes, walker: Walker) -> Outcome:
    path.write_bytes(data)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        try:
            return walker(mapped)
        except Exception as error:  # the reference may fail on some damage: the compiled path must fail alike
            return type(error).__name__


def _heap_outcome(data: bytes, walker: Walker) -> Outcome:
    """The walk over a heap copy (AddressSanitizer guards its end; a mapping's last page has no guard)."""
    try:
        return walker(cast(mmap.mmap, data))
    except Exception as error:
        return type(error).__name__


@pytest.fixture
def fresh_loader() -> Iterator[None]:
    compiled.compiled_walkers.cache_clear()
    yield
    compiled.compiled_walkers.cache_clear()


def test_the_library_make_setup_built_is_the_one_in_use() -> None:
    walkers = compiled.compiled_walkers()
    assert walkers is not None
    assert compiled._unusable(compiled.LIBRARY) is None


def test_a_missing_library_falls_back_to_the_numpy_walks_and_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fresh_loader: None
) -> None:
    path = write_audio(tmp_path / "source", fmt="flac", seconds=8.0, kind="noise")
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        with_library = flac.flac_length(mapped, "flac", 44100)
        monkeypatch.setattr(compiled, "LIBRARY", tmp_path / "absent.so")
        compiled.compiled_walkers.cache_clear()
        with caplog.at_level(logging.WARNING, logger="earshot.audio.lengths.compiled"):
            without = [flac.flac_length(mapped, "flac", 44100) for _ in range(3)]
    assert compiled.compiled_walkers() is None
    assert without == [with_library] * 3 and with_library is not None and with_library.samples > 0
    warnings = [record for record in caplog.records if "unavailable" in record.getMessage()]
    assert len(warnings) == 1 and "not built" in str(getattr(warnings[0], "reason", ""))


def test_a_library_built_from_another_source_is_not_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    library = compiled.build_library(tmp_path / "walkers.so")
    assert compiled._unusable(library) is None
    monkeypatch.setattr(compiled, "source_digest", lambda source=compiled.SOURCE: "0" * 64)  # walkers.c edited since
    assert "another walkers.c" in str(compiled._unusable(library))


def test_the_compiled_walks_refuse_what_the_python_walks_refuse() -> None:
    walkers = compiled.compiled_walkers()
    assert walkers is not None
    with pytest.raises(ValueError, match="65,536"):
        compiled.FrameSizes([0] * 10)
    free_format = compiled.FrameSizes([0] * 65536)  # bitrate index 0 (free format) has no size: nothing is walked
    frames = compiled.Mapped(b"\xff\xfb\x00\x00" * 100)
    assert walkers.mpeg_frames(frames, position=0, sizes=free_format) == (0, 0)
    assert walkers.mpeg_frames(compiled.Mapped(b"\xff\xfb"), position=5, sizes=free_format) == (0, 5)  # past the end
    block = compiled.Mapped(b"\xa3\x86\x81\x00\x00\x80\xf8\x00")  # one 20 ms Opus block of track 1
    walk: dict[str, Any] = {"cluster_end": 8, "unknown_size": False, "segment_end": 8, "track_byte": 0x81}
    walked = walkers.matroska_blocks(block, position=0, **walk)
    assert (walked.position, walked.blocks, walked.samples, walked.last_samples, walked.cluster_done) == (
        8,
        1,
        960,
        960,
        True,
    )
    walked = walkers.matroska_blocks(block, position=-3, **walk)  # before the buffer: read nothing, hand it back
    assert (walked.position, walked.blocks, walked.cluster_done) == (-3, 0, False)
    walked = walkers.matroska_blocks(block, position=0, **(walk | {"track_byte": 0x82}))  # another track's block
    assert (walked.position, walked.blocks, walked.cluster_done) == (0, 0, False)
    assert (
        walkers.flac_frames(compiled.Mapped(b"\xff\xf8"), after=-10, second=0xF8, stream=(9, 0, 4), max_strays=0)
        is None
    )
    assert walkers.flac_frames(compiled.Mapped(b""), after=0, second=0xF8, stream=(9, 0, 4), max_strays=0) == 0


def test_record_chains_longer_than_the_first_guess_are_walked_whole() -> None:
    """The FLV and AVI walks size their result for records of ordinary length and walk again when there are more."""
    walkers = compiled.compiled_walkers()
    assert walkers is not None
    empty_tag = b"\x12\x00\x00\x00" + bytes(7) + (11).to_bytes(4, "big")  # a script tag of no data, 15 bytes
    tags = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00" + empty_tag * 20_000 + b"\x08\x00"
    expected = flv._tags(cast(mmap.mmap, tags), 13, sequential=True)
    assert expected.size == 20_000
    assert (walkers.flv_tags(compiled.Mapped(tags), start=13) == expected).all()
    audio = walkers.flv_audio(compiled.Mapped(tags), start=13, payloads=True)
    assert (audio.records, audio.codec, audio.mixed, audio.aac_frames) == (0, -1, False, 0)
    with pytest.raises(ValueError, match="inside the file"):
        walkers.flv_tags(compiled.Mapped(tags), start=-1)
    audio_id = int.from_bytes(b"00wb", "little")
    chunks = b"00wb\x02\x00\x00\x00ab" * 5000 + b"00wb\x09\x00\x00\x00abc"  # the last cut: 3 bytes of 9 present
    claimed = len(chunks) + 6  # the RIFF size states the file whole: the last chunk fits in it
    found = walkers.avi_chunks(compiled.Mapped(chunks), start=0, claimed=claimed, known=[audio_id])
    assert found is not None and found.payloads is not None
    starts, lengths = found.payloads
    assert starts.tolist() == [8 + 10 * index for index in range(5001)]
    assert lengths.tolist() == [2] * 5000 + [3]


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        (b"RIFF\x10\x00\x00\x00AVIX" + b"00wb\x02\x00\x00\x00ab", [20]),  # an OpenDML continuation: entered
        (b"00wb\x02\x00\x00\x00abRIFF\x10\x00\x00\x00AVI " + b"00wb\x02\x00\x00\x00ab", None),  # another form
        (b"00wb\x02\x00\x00\x00abRIFF\x10\x00\x00\x00AV", None),  # a form whose type the file cuts
        (b"junk" + b"00wb\x02\x00\x00\x00ab" * 2, [12, 22]),  # scanned byte by byte to a header
        (b"00wb\xff\x00\x00\x00ab00wb\x02\x00\x00\x00ab", [18]),  # a size past the file: not a header
    ],
)
def test_avi_chunks_are_entered_skipped_and_refused_as_audio_chunks_reads_them(
    chunks: bytes, expected: list[int] | None
) -> None:
    walkers = compiled.compiled_walkers()
    assert walkers is not None
    known = [int.from_bytes(name, "little") for name in (b"00wb", b"LIST", b"RIFF", b"JUNK")]
    found = walkers.avi_chunks(compiled.Mapped(chunks), start=0, claimed=len(chunks), known=known)
    assert (None if found is None or found.payloads is None else found.payloads[0].tolist()) == expected
    with pytest.raises(ValueError, match="first"):
        walkers.avi_chunks(compiled.Mapped(chunks), start=0, claimed=len(chunks), known=[])


def test_mpeg_records_are_one_frame_each_only_when_every_one_is() -> None:
    import numpy as np

    walkers = compiled.compiled_walkers()
    assert walkers is not None
    frame = b"\xff\xfb\x90\x64" + bytes(413)  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz: 417 bytes
    reference = mpeg_audio._Stream(int.from_bytes(frame[:4], "big")).reference
    sizes = mpeg_audio._compiled_frame_sizes(reference)
    data = compiled.Mapped(frame * 3 + frame[:100])
    starts = np.asarray([0, 417, 834, 1251], dtype=np.int64)

    def one_each(lengths: list[int], at: np.ndarray = starts) -> bool:
        return walkers.mpeg_records(data, starts=at, lengths=np.asarray(lengths, dtype=np.int64), sizes=sizes)

    assert one_each([417, 417, 417, 100])  # the last one starts a frame: it is walked alone
    assert not one_each([417, 416, 417, 100])  # a record that is not one whole frame
    assert not one_each([417, 417, 417, 3])  # a record under 4 bytes
    assert not one_each([417, 417, 417, 100], starts + np.asarray([0, 0, 0, 98]))  # 4 bytes past the buffer's end
    assert not one_each([417, 417, 417, 100], starts + np.asarray([0, 0, 1, 0]))  # no frame there
    assert not one_each([], starts[:0])  # no records
    with pytest.raises(ValueError, match="int64"):
        walkers.mpeg_records(data, starts=starts, lengths=starts[:2], sizes=sizes)


def _laced_block(flags: int, lace: bytes, frames: bytes) -> compiled.Mapped:
    """One SimpleBlock of track 1 with ``flags`` (its lacing bits), lace header ``lace`` and frame bytes ``frames``."""
    body = b"\x81\x00\x00" + bytes([flags]) + lace + frames
    return compiled.Mapped(b"\xa3" + bytes([0x80 | len(body)]) + body)


@pytest.mark.parametrize(
    ("flags", "lace", "frames", "taken"),
    [
        # Three 20 ms packets (TOC 0xF8) of 3, 3 and 4 bytes, each lacing; then a 2-frame packet (code 1) alone.
        (0x82, bytes([2, 3, 3]), b"\xf8ab\xf8cd\xf8efg", (2880, 960)),
        (0x86, bytes([2, 0x83, 0xBF]), b"\xf8ab\xf8cd\xf8efg", (2880, 960)),  # EBML: 3, then a difference of 0
        (0x84, bytes([2]), b"\xf8ab\xf8cd\xf9ef", (3840, 1920)),
        (0x80, b"", b"\xf9", (1920, 1920)),
        (0x82, bytes([1, 200]), b"\xf8" * 50, None),  # the first frame claims more than the block holds
        (0x82, bytes([1, 50]), b"\xf8" * 50, None),  # nothing left for the last frame
        (0x86, bytes([2, 0x8A, 0x80]), b"\xf8" * 30, None),  # a difference that makes a size negative
        (0x84, bytes([2]), b"\xf8" * 10, None),  # 10 bytes do not split into 3 equal frames
        (0x86, bytes([1, 0x40]), b"", None),  # a 2-byte size cut by the block's end
    ],
)
def test_laced_blocks_are_taken_as_laced_frames_takes_them(
    flags: int, lace: bytes, frames: bytes, taken: tuple[int, int] | None
) -> None:
    walkers = compiled.compiled_walkers()
    assert walkers is not None
    block = _laced_block(flags, lace, frames)
    walked = walkers.matroska_blocks(
        block, position=0, cluster_end=block.size, unknown_size=False, segment_end=block.size, track_byte=0x81
    )
    if taken is None:  # handed back: the Python walk refuses the file (ffprobe counts it)
        assert (walked.position, walked.blocks, walked.cluster_done) == (0, 0, False)
    else:
        assert (walked.position, walked.blocks, walked.samples, walked.last_samples) == (block.size, 1, *taken)


def _adts(blocks: int = 1) -> bytes:
    """One 10-byte ADTS AAC-LC frame (44.1 kHz, mono) stating ``blocks`` raw data blocks."""
    return bytes((0xFF, 0xF1, 0x50, 0x40, 0x01, 0x5F, 0xFC | (blocks - 1))) + b"abc"


_GAP = bytes(20)  # junk without a sync: ffmpeg's ADTS demuxer resyncs 10 bytes on, so the gap is longer than that


@pytest.mark.parametrize(
    ("stream", "samples"),
    [
        (_adts() * 3, 3 * 1024),
        (_adts() * 3 + _adts()[:9], 3 * 1024),  # a last frame cut short does not count
        (_adts() * 2 + _GAP + _adts() * 3, 4 * 1024),  # the frame before junk does not; the walk resumes after it
        (_adts() * 2 + _GAP + _adts() + _GAP + _adts() * 3, 4 * 1024),  # a lone false sync in junk is not billed
        (_adts() * 2 + _GAP + _adts() * 2 + _GAP + _adts() * 3, 4 * 1024),  # nor two chained: three must chain
        (_adts() * 2 + _GAP + _adts() * 3 + _adts()[:9], 4 * 1024),  # three that chain, then a cut one: they count
        (_adts() * 2 + _GAP + b"\xff\xf1\x50\x40\x00\x1f\xfc" + _GAP + _adts() * 3, 1024),  # size 0: ffmpeg stops
        (_adts() * 2 + _adts(blocks=4) + _adts(), None),  # a counted frame of four raw data blocks: ffprobe decides
        (_adts() * 2 + _GAP + _adts(blocks=4) + _GAP + _adts() * 3, 4 * 1024),  # one that is not counted is not read
    ],
)
def test_the_elementary_chain_is_walked_frame_by_frame(
    stream: bytes, samples: int | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def walk(data: mmap.mmap) -> AudioLength | None:
        return elementary.elementary_length(data, "aac", 44100)

    want = None if samples is None else AudioLength(samples, 44100)
    assert compiled.compiled_walkers() is not None
    assert _outcome(tmp_path / "stream", stream, walk) == want
    monkeypatch.setattr(compiled, "compiled_walkers", lambda: None)  # the vectorised walk
    assert _outcome(tmp_path / "stream", stream, walk) == want


@pytest.mark.parametrize("source", _SOURCES, ids=[source[0] for source in _SOURCES])
def test_randomly_mutated_files_get_the_length_the_sequential_walk_gives(
    source: tuple[str, float, Walker, str | None, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fmt, seconds, walker, threshold, plant = source
    original = _source(tmp_path / "source", fmt, seconds)
    rng = random.Random(f"{fmt}-fuzz")
    variants = [original[:cut] for cut in (1, 4, 40, 300)] + [_mutated(original, plant, rng) for _ in range(_MUTATIONS)]
    assert compiled.compiled_walkers() is not None
    native = [_outcome(tmp_path / "variant", data, walker) for data in variants]
    assert [_heap_outcome(data, walker) for data in variants] == native
    monkeypatch.setattr(compiled, "compiled_walkers", lambda: None)
    if threshold is not None:
        monkeypatch.setattr(threshold, 1 << 40)  # the sequential walk only: the reference
    reference = [_outcome(tmp_path / "variant", data, walker) for data in variants]
    mismatches = [
        (index, got, want) for index, (got, want) in enumerate(zip(native, reference, strict=True)) if got != want
    ]
    assert not mismatches
    assert any(isinstance(outcome, AudioLength) and outcome.samples > 0 for outcome in native)
