"""Laced Matroska blocks (mkvmerge laces Opus and Vorbis packets): each frame found where its lace says it starts,
and a lace whose sizes do not add up to the block refused (the file then goes to ffprobe's packet counter)."""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

import pytest

from earshot.audio.lengths.matroska import _laced_frames


@pytest.fixture
def mapped(tmp_path: Path) -> Iterator[object]:
    def open_bytes(data: bytes) -> mmap.mmap:
        path = tmp_path / "block"
        path.write_bytes(data)
        with path.open("rb") as handle:
            return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)

    yield open_bytes


def test_xiph_lacing(mapped) -> None:  # type: ignore[no-untyped-def]
    # 3 frames: sizes 300 (255 + 45) and 2, the last one the rest (4 bytes).
    block = bytes([2, 255, 45, 2]) + b"a" * 300 + b"bb" + b"cccc"
    assert _laced_frames(mapped(block), 0, len(block), 0x02) == [4, 304, 306]


def test_ebml_lacing_with_signed_differences(mapped) -> None:  # type: ignore[no-untyped-def]
    # 3 frames: first size 10 (1-byte vint 0x8A), then a difference of -3 (1-byte signed vint: 63 - 3 = 60 -> 0xBC).
    block = bytes([2, 0x8A, 0xBC]) + b"a" * 10 + b"b" * 7 + b"c" * 5
    assert _laced_frames(mapped(block), 0, len(block), 0x06) == [3, 13, 20]


def test_fixed_lacing(mapped) -> None:  # type: ignore[no-untyped-def]
    block = bytes([3]) + b"abcd" * 4
    assert _laced_frames(mapped(block), 0, len(block), 0x04) == [1, 5, 9, 13]


@pytest.mark.parametrize(
    ("block", "lacing"),
    [
        (bytes([1, 200]) + b"a" * 50, 0x02),  # the first frame claims more than the block holds
        (bytes([1, 50]) + b"a" * 50, 0x02),  # nothing left for the last frame
        (bytes([2, 255, 255]), 0x02),  # the size runs off the block's end
        (bytes([2, 0x8A, 0x80]) + b"a" * 30, 0x06),  # a difference that makes a size negative
        (bytes([2]) + b"a" * 10, 0x04),  # 10 bytes do not split into 3 equal frames
        (bytes([0x01, 0x40]), 0x06),  # a 2-byte vint cut by the block's end
        (b"", 0x02),
    ],
)
def test_a_lace_that_does_not_add_up_is_refused(mapped, block: bytes, lacing: int) -> None:  # type: ignore[no-untyped-def]
    if not block:
        assert _laced_frames(mapped(b"x"), 1, 1, lacing) is None
        return
    assert _laced_frames(mapped(block), 0, len(block), lacing) is None
