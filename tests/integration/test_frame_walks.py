"""The compiled and the vectorised frame walks count exactly what the one-step-per-frame walks count, on damaged
files too.

The compiled walkers (``walkers.c``, what ``make setup`` builds and the layer ships) run first; without them long
mp3 files are walked by many walkers in lockstep (``mpeg_audio._walk_in_lockstep``), long WebM/Opus files jump
along runs of blocks found by one scan (``matroska_runs``) and long FLAC files have their headers parsed at once;
below a size threshold (set to 0 here) they use the sequential walks, which are the ones checked against decoders
(test_metering, test_hostile_metering). Here every cut, junk insert, bit flip, lying cluster size, renumbered frame
and planted false sync must give the same length from both.
"""

from __future__ import annotations

import mmap
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from audio_fixtures import decoded_duration, encode_tone, write_audio

from earshot.audio.lengths import compiled, flac, matroska, mpeg_audio
from earshot.audio.lengths.common import AudioLength

Variant = tuple[str, bytes]


def _variants(original: bytes, plant: bytes, seed: int) -> list[Variant]:
    """The file, cut at awkward offsets, with junk inserted, bits flipped, and ``plant`` (a false sync) sown."""
    rng = random.Random(seed)
    size = len(original)
    out: list[Variant] = [("intact", original), ("tag-after", original + b"TAG" + bytes(125))]
    out += [(f"cut-{cut}", original[:cut]) for cut in sorted(rng.sample(range(size // 20, size), 12))]
    for _ in range(6):
        at = rng.randrange(1000, size - 1000)
        junk = rng.randbytes(rng.randrange(1, 2000))
        out.append((f"junk-{at}", original[:at] + junk + original[at:]))
    for _ in range(6):
        flipped = bytearray(original)
        at = rng.randrange(200, size)
        flipped[at] ^= 1 << rng.randrange(8)
        out.append((f"flip-{at}", bytes(flipped)))
    planted = bytearray(original)
    for at in range(4000, size - 16, 2999):
        planted[at : at + len(plant)] = plant
    out.append(("false-syncs", bytes(planted)))
    return out


def _length(data: bytes, tmp_path: Path, walker: Callable[[mmap.mmap], AudioLength | None]) -> AudioLength | None:
    path = tmp_path / "variant"
    path.write_bytes(data)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        return walker(mapped)


def _compare(
    variants: list[Variant],
    tmp_path: Path,
    walker: Callable[[mmap.mmap], AudioLength | None],
    monkeypatch: pytest.MonkeyPatch,
    threshold: str,
) -> None:
    assert compiled.compiled_walkers() is not None, "make setup builds the compiled walkers"
    native = {name: _length(data, tmp_path, walker) for name, data in variants}
    monkeypatch.setattr(compiled, "compiled_walkers", lambda: None)  # the numpy and Python walks from here on
    monkeypatch.setattr(threshold, 0)  # the vectorised walk, whatever the size
    fast = {name: _length(data, tmp_path, walker) for name, data in variants}
    monkeypatch.setattr(threshold, 1 << 40)  # the sequential walk only
    slow = {name: _length(data, tmp_path, walker) for name, data in variants}
    assert native == slow
    assert fast == slow
    assert fast["intact"] is not None and fast["intact"].samples > 0


@pytest.mark.parametrize("fmt", ["mp3", "mp3_vbr"])
def test_lockstep_mp3_walk_counts_what_the_sequential_walk_counts(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = write_audio(tmp_path / "source", fmt=fmt, seconds=45.0, kind="noise").read_bytes()
    variants = _variants(original, b"\xff\xfb\x90\x64", seed=11)
    _compare(
        variants,
        tmp_path,
        lambda data: mpeg_audio.mp3_length(data, "mp3", 44100),
        monkeypatch,
        "earshot.audio.lengths.mpeg_audio._LOCKSTEP_MIN_BYTES",
    )


@pytest.mark.parametrize("fmt", ["webm", "webm_noduration"])
def test_block_runs_count_what_the_block_by_block_walk_counts(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = write_audio(tmp_path / "source", fmt=fmt, seconds=45.0, kind="noise").read_bytes()
    variants = _variants(original, b"\xa3\x90\x81\x00\x00\x80", seed=13) + _lying_clusters(original)
    _compare(
        variants,
        tmp_path,
        lambda data: matroska.matroska_length(data, "opus", 48000),
        monkeypatch,
        "earshot.audio.lengths.matroska._RUNS_MIN_BYTES",
    )


def test_compiled_alac_block_walk_counts_what_the_block_by_block_walk_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Matroska ALAC: the compiled walk takes the fast-form blocks (their frame headers read in C) where the Python
    walk takes them one by one; 45 s does not fill the last 4096-sample frame, which states its own count."""
    original = encode_tone(tmp_path / "source", "matroska", "alac", 45.0, 44100).read_bytes()
    variants = _variants(original, b"\xa3\x90\x81\x00\x00\x80\x20\x00\x10", seed=17) + _lying_clusters(original)
    _compare(
        variants,
        tmp_path,
        lambda data: matroska.matroska_length(data, "alac", 44100),
        monkeypatch,
        "earshot.audio.lengths.matroska._RUNS_MIN_BYTES",
    )


def _lying_clusters(original: bytes) -> list[Variant]:
    """The file with a cluster whose size claims a little more or less than its blocks, for three clusters."""
    variants: list[Variant] = []
    clusters = [at for at in range(len(original)) if original.startswith(b"\x1f\x43\xb6\x75", at)]
    for at in clusters[1:4]:
        width = 9 - original[at + 4].bit_length()  # the size's length, from its first byte's leading zeros
        if original[at + 4 : at + 4 + width] == b"\x01" + b"\xff" * 7:
            continue  # unknown size (as a browser writes them): nothing to lie about
        for delta in (-7, 9):
            lying = bytearray(original)
            lying[at + 3 + width] = (lying[at + 3 + width] + delta) & 0xFF
            variants.append((f"cluster-size-{at}{delta:+}", bytes(lying)))
    return variants


@pytest.mark.parametrize(("rate", "seconds"), [(44100, 20.0), (8000, 60.0)])
def test_vectorised_flac_walk_counts_what_the_sequential_walk_counts(
    rate: int, seconds: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = write_audio(tmp_path / "source", fmt="flac", seconds=seconds, sample_rate=rate, kind="noise")
    data = original.read_bytes()
    variants = _variants(data, b"\xff\xf8\x69\x08\x00", seed=17)
    with original.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        first = flac._audio_start(mapped)
    assert first is not None
    renumbered = bytearray(data)  # frame numbers rewritten (CRC-8 left wrong): those headers no longer count
    for at in [at for at in range(first, len(data) - 8) if data.startswith(data[first : first + 4], at)][5::7]:
        renumbered[at + 4] ^= 0x01
    assert renumbered != bytearray(data)
    variants.append(("renumbered", bytes(renumbered)))
    _compare(
        variants,
        tmp_path,
        lambda mapped: flac.flac_length(mapped, "flac", rate),
        monkeypatch,
        "earshot.audio.lengths.flac._VECTORISED_MIN_BYTES",
    )


@pytest.mark.parametrize("threshold", [0, 1 << 40], ids=["vectorised", "sequential"])
def test_a_stereo_flac_counts_every_frame_whatever_its_stereo_coding(
    threshold: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An encoder picks independent, left/side, right/side or mid/side stereo frame by frame (the reference `flac`
    does): a walk that took the first frame's coding for the stream's skipped the rest, and a 60.000 s file from
    `flac` billed 58.7 s (the engine then heard 58.7 s of it)."""
    path = write_audio(tmp_path / "mix.flac", fmt="flac", seconds=20.0, channels=2, kind="stereo_mix")
    data = path.read_bytes()
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        frames = [flac._parse_frame(mapped, at) for at in range(len(data) - 16) if data.startswith(b"\xff\xf8", at)]
    codings = {frame.channels_code for frame in frames if frame is not None}
    assert len(codings & {1, 8, 9, 10}) >= 2, codings  # the file really mixes stereo codings
    monkeypatch.setattr("earshot.audio.lengths.flac._VECTORISED_MIN_BYTES", threshold)
    length = _length(data, tmp_path, lambda mapped: flac.flac_length(mapped, "flac", 44100))
    assert length is not None and length.samples == round(decoded_duration(path) * 44100) == 882_000


@pytest.mark.parametrize("stretch", [2, 3, 4099, 1 << 20])
def test_flac_sync_scan_finds_what_find_finds(stretch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    rng = random.Random(5)
    data = bytearray(rng.randbytes(300_000))
    for at in [0, 2, 4099, 8198, len(data) - 3]:  # before the scan's start, across stretch edges, near the end
        data[at : at + 2] = b"\xff\xf8"
    data[-1] = 0xFF  # a lone lead byte at the very end is no pattern
    monkeypatch.setattr(flac, "_SCAN_STRETCH", stretch)
    buffer = np.frombuffer(bytes(data), dtype=np.uint8)
    found = [int(at) for part in flac._sync_positions(np, buffer, 0xF8, 0) for at in part]
    expected, position = [], 0
    while (position := bytes(data).find(b"\xff\xf8", position + 1)) >= 0:
        expected.append(position)
    assert found == expected
    assert {2, 4099, 8198, len(data) - 3} <= set(found) and 0 not in found and len(data) - 1 not in found


def test_compiled_flac_header_parse_at_given_offsets_is_the_vectorised_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``flac.frame_block_sizes`` (CAF packets, MP4 samples): the block size at every offset of a FLAC file (its
    frames, and every byte that is not one), at offsets past either end, and in bit-flipped copies, is the same from
    C and from numpy."""
    original = write_audio(tmp_path / "source", fmt="flac", seconds=2.0, kind="noise").read_bytes()
    variants = [("intact", original), *[v for v in _variants(original, b"", seed=19) if v[0].startswith("flip")]]
    offsets = np.concatenate([np.arange(-8, len(original) + 8), [-(1 << 40), 1 << 40]]).astype(np.int64)

    def sizes(data: bytes) -> npt.NDArray[np.int64]:
        path = tmp_path / "variant"
        path.write_bytes(data)
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return flac.frame_block_sizes(mapped, offsets)

    assert compiled.compiled_walkers() is not None, "make setup builds the compiled walkers"
    native = [sizes(data) for _, data in variants]
    assert np.count_nonzero(native[0]) >= 19  # every frame of 2 s at 44.1 kHz (4608 samples each), at least
    monkeypatch.setattr(compiled, "compiled_walkers", lambda: None)
    for (name, data), found in zip(variants, native, strict=True):
        assert np.array_equal(found, sizes(data)), name
