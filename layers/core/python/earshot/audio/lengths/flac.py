"""Native FLAC: the block sizes of the frames in the file, added up from the first frame to the last.

STREAMINFO's total-samples field is a header (a 1-second file may claim ten hours), and so is each frame
header's position (frame number or sample number): a file may renumber its last frames to claim hours, or its
second frame to claim nothing. Decoders play every frame they find, whatever its number, so the walk counts
every CRC-8-valid frame header of the same stream (rate, channel count, depth, blocking) by its block size and
ignores the numbers. Each next header is found with ``mmap.find`` (in a fixed-block-size stream, first by its
exact first bytes and the number it should carry), so the walk costs one pass over the file in C plus one
header parse per frame. From 256 KiB of frames on, every sync pattern is found by vectorised byte comparisons
and the headers are checked all at once. A file stuffed with stray sync patterns is left to ffprobe's packet
counter. Where the compiled walkers are built (``compiled.py``), that same filter runs in C for every file.
"""

from __future__ import annotations

import itertools
import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from earshot.audio.lengths import compiled
from earshot.audio.lengths.common import AudioLength

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def _crc8_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return table


_CRC8 = _crc8_table()
# Where the next frame of a fixed-block-size stream is looked for first (FLAC frames are rarely above 16 kB).
_NEXT_FRAME_WINDOW = 256 * 1024
# Sync patterns that turn out not to be the next frame, before the file is left to ffprobe's packet counter.
_MAX_STRAYS = 20_000
# From this many bytes of frames on, the headers are parsed with numpy (``_walk_vectorised``).
_VECTORISED_MIN_BYTES = 256 * 1024
# Sync patterns whose headers are parsed at once (bounds the header matrix: 64 Ki x 16 x 8 bytes = 8 MiB).
_BATCH = 64 * 1024
# Bytes compared at a time when looking for sync patterns (two boolean buffers of this size stay in cache).
_SCAN_STRETCH = 1024 * 1024
# The longest frame header: sync (2), sizes, layout, a 7-byte number, a 2-byte block size, a 2-byte rate.
_HEADER_MAX = 15


@dataclass(frozen=True)
class _Frame:
    offset: int
    variable: bool
    number: int  # frame number (fixed block size) or first sample (variable)
    block_size: int
    rate_code: int
    channels_code: int
    depth_code: int

    @property
    def channel_count(self) -> int:
        return _channel_count(self.channels_code)


def _channel_count(code: int) -> int:
    """Channels of a frame's channel assignment: codes 0-7 are 1-8 independent channels, 8-10 are stereo coded as
    left/side, right/side or mid/side. An encoder picks the stereo coding frame by frame (the reference encoder
    does), so frames of one stream differ in the code, never in the count."""
    return code + 1 if code < 8 else 2


def _block_size(code: int, data: bytes | mmap.mmap, at: int) -> tuple[int, int]:
    """(block size, bytes of trailing size field) for a frame header's block size code."""
    if code == 1:
        return 192, 0
    if 2 <= code <= 5:
        return 576 << (code - 2), 0
    if code == 6:
        return (data[at] + 1, 1) if at < len(data) else (0, 0)  # cut right there: no header
    if code == 7:
        return int.from_bytes(data[at : at + 2], "big") + 1, 2
    if code >= 8:
        return 256 << (code - 8), 0
    return 0, 0


def _parse_frame(data: mmap.mmap, offset: int) -> _Frame | None:
    """A frame header at ``offset`` if it is well formed and its CRC-8 matches."""
    end = len(data)
    if offset + 6 > end:
        return None
    second, sizes, layout = data[offset + 1], data[offset + 2], data[offset + 3]
    block_code, rate_code = sizes >> 4, sizes & 0x0F
    channels_code, depth_code = layout >> 4, (layout >> 1) & 0x07
    if block_code == 0 or rate_code == 15 or channels_code > 10 or depth_code == 3 or layout & 1:
        return None
    # The frame or sample number, in UTF-8-like coding (up to 7 bytes).
    position = offset + 4
    lead = data[position]
    if lead < 0x80:
        number, extra = lead, 0
    elif lead >= 0xFE:
        number, extra = 0, 6
    else:
        extra = 0
        mask = 0x40
        while lead & mask:
            extra += 1
            mask >>= 1
        if extra == 0 or extra > 5:
            return None
        number = lead & (mask - 1)
    if position + 1 + extra > end:
        return None
    for index in range(1, extra + 1):
        byte = data[position + index]
        if byte & 0xC0 != 0x80:
            return None
        number = (number << 6) | (byte & 0x3F)
    position += 1 + extra
    block_size, size_bytes = _block_size(block_code, data, position)
    position += size_bytes
    position += {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if position >= end or block_size == 0:
        return None
    crc = 0
    for byte in data[offset:position]:
        crc = _CRC8[crc ^ byte]
    if crc != data[position]:
        return None
    return _Frame(offset, bool(second & 1), number, block_size, rate_code, channels_code, depth_code)


def _number_extra(lead: int) -> int:
    """Continuation bytes after a frame or sample number's lead byte (as ``_parse_frame`` reads it); -1: invalid."""
    if lead < 0x80:
        return 0
    if lead >= 0xFE:
        return 6
    extra = 0
    while lead & (0x40 >> extra):
        extra += 1
    return extra if 1 <= extra <= 5 else -1


_NUMBER_EXTRA = [_number_extra(lead) for lead in range(256)]


def _audio_start(data: mmap.mmap) -> int | None:
    """Offset of the first frame: after the 'fLaC' marker and every metadata block."""
    position = 4
    while position + 4 <= len(data):
        header = data[position]
        size = int.from_bytes(data[position + 1 : position + 4], "big")
        position += 4 + size
        if header & 0x80:  # last metadata block
            return position
    return None


def _next_position(frame: _Frame) -> int:
    """The frame or sample number the frame after ``frame`` must carry."""
    return frame.number + (frame.block_size if frame.variable else 1)


def _coded_number(number: int) -> bytes:
    """A frame or sample number in the frame header's UTF-8-like coding."""
    if number < 0x80:
        return bytes((number,))
    extra = 1
    while number >= 1 << (6 * extra + 6 - extra):
        extra += 1
    lead = ((0xFF << (7 - extra)) & 0xFF) | (number >> (6 * extra))
    return bytes((lead, *(0x80 | ((number >> (6 * index)) & 0x3F) for index in range(extra - 1, -1, -1))))


def flac_length(data: mmap.mmap, codec: str, sample_rate: int) -> AudioLength | None:
    if codec != "flac" or data[:4] != b"fLaC":
        return None
    start = _audio_start(data)
    if start is None or start >= len(data):
        return AudioLength(0, sample_rate)
    first = _parse_frame(data, start)
    if first is None:
        return None
    walkers = compiled.compiled_walkers()
    if walkers is not None:
        samples = walkers.flac_frames(
            compiled.Mapped(data),
            after=first.offset,
            second=0xF9 if first.variable else 0xF8,
            stream=(first.rate_code, first.channel_count, first.depth_code),
            max_strays=_MAX_STRAYS,
        )
        return None if samples is None else AudioLength(first.block_size + samples, sample_rate)
    if len(data) - start < _VECTORISED_MIN_BYTES:
        return _walk_sequentially(data, first, sample_rate)
    return _walk_vectorised(data, first, sample_rate)


def _walk_vectorised(data: mmap.mmap, first: _Frame, sample_rate: int) -> AudioLength | None:
    """``_walk_sequentially``'s count, with the frame headers parsed and checked all at once (numpy).

    The sequential walk counts, after the first frame, every sync pattern that parses as a CRC-8-valid frame
    header of the same stream, in file order: that is a filter over every sync pattern in the file, so the
    patterns are found by two vectorised byte comparisons (``_sync_positions``) and their headers parsed in a few
    array operations.
    """
    import numpy as np

    size = len(data)
    buffer = np.frombuffer(data, dtype=np.uint8)
    table = np.asarray(_CRC8, dtype=np.int64)
    total, strays = first.block_size, 0
    pending: list[Any] = []
    waiting = 0
    stretches = _sync_positions(np, buffer, 0xF9 if first.variable else 0xF8, first.offset)
    for found in itertools.chain(stretches, [None]):
        if found is not None:
            pending.append(found)
            waiting += found.size
            if waiting < _BATCH:
                continue
        if not pending:
            break
        # A batch at a time, so a file stuffed with sync patterns is given up after _MAX_STRAYS of them, not
        # after millions of positions and a header matrix of gigabytes.
        positions = np.concatenate(pending)
        pending, waiting = [], 0
        for batch in range(0, positions.size, _BATCH):
            at = positions[batch : batch + _BATCH]
            valid, block_size = _headers(np, buffer, table, at, first, size)
            total += int(block_size[valid].sum())
            strays += at.size - int(np.count_nonzero(valid))
            if strays > _MAX_STRAYS:
                return None  # stuffed with sync patterns: ffprobe's parser counts it, in C, under its deadline
    return AudioLength(total, sample_rate)


def _sync_positions(np: Any, buffer: Any, second: int, after: int) -> Iterator[Any]:
    """The positions past ``after`` of every ``0xFF second`` byte pair, in order, one array per stretch.

    Two byte comparisons per stretch of ``_SCAN_STRETCH`` bytes (vectorised, in reused buffers that stay in the
    CPU's cache): about three times quicker here than ``mmap.find`` called once per pattern, which scans byte by
    byte for a two-byte needle and pays a Python call per frame.
    """
    size = buffer.size
    lead = np.empty(min(_SCAN_STRETCH, size), dtype=bool)
    follow = np.empty_like(lead)
    start = after + 1
    while start < size - 1:
        end = min(start + _SCAN_STRETCH, size - 1)
        is_lead, is_follow = lead[: end - start], follow[: end - start]
        np.equal(buffer[start:end], 0xFF, out=is_lead)
        np.equal(buffer[start + 1 : end + 1], second, out=is_follow)
        np.logical_and(is_lead, is_follow, out=is_lead)
        if is_lead.any():
            yield np.flatnonzero(is_lead).astype(np.int64) + start
        start = end


def _headers(np: Any, buffer: Any, table: Any, at: Any, first: _Frame, size: int) -> tuple[Any, Any]:
    """Which sync patterns at ``at`` are CRC-8-valid frame headers of ``first``'s stream, and their block sizes."""
    block_size, head = _parse_headers(np, buffer, table, at, size)
    layout = head[3]
    channels_code = layout >> 4
    valid = (block_size > 0) & ((head[2] & 0x0F) == first.rate_code) & (((layout >> 1) & 0x07) == first.depth_code)
    valid &= np.where(channels_code < 8, channels_code + 1, 2) == first.channel_count
    return valid, block_size


def frame_block_sizes(data: mmap.mmap, offsets: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``_parse_frame(data, offset).block_size`` for every offset at once (numpy), 0 where it finds no frame header.

    For containers that say where each FLAC frame starts (CAF packets, MP4 samples): the same header checks and
    CRC-8, whatever stream the header belongs to.
    """
    import numpy as np

    at = np.asarray(offsets, dtype=np.int64)
    if at.size == 0 or len(data) == 0:
        return np.zeros(at.size, dtype=np.int64)
    walkers = compiled.compiled_walkers()
    if walkers is not None:
        return walkers.flac_block_sizes(compiled.Mapped(data), at)
    buffer = np.frombuffer(data, dtype=np.uint8)
    block_size: npt.NDArray[np.int64] = _parse_headers(np, buffer, np.asarray(_CRC8, dtype=np.int64), at, len(data))[0]
    return block_size


def _parse_headers(np: Any, buffer: Any, table: Any, at: Any, size: int) -> tuple[Any, Any]:
    """``_parse_frame`` at every position of ``at`` at once: (block sizes, 0 where it finds no header; the header
    bytes, one row per byte)."""
    head = buffer[np.clip(np.arange(_HEADER_MAX + 1)[:, None] + at, 0, size - 1)].astype(np.int64)  # byte by row
    sizes, layout = head[2], head[3]
    block_code, rate_code = sizes >> 4, sizes & 0x0F
    valid = (at >= 0) & (at + 6 <= size) & (block_code != 0) & (rate_code != 15)
    valid &= (layout >> 4 <= 10) & (((layout >> 1) & 0x07) != 3) & (layout & 1 == 0)
    # The frame or sample number: a UTF-8-like lead byte and ``extra`` continuation bytes (10xxxxxx).
    lead = head[4]
    extra = np.asarray(_NUMBER_EXTRA)[lead]
    valid &= extra >= 0
    extra = np.maximum(extra, 0)
    valid &= at + 5 + extra <= size
    for index in range(1, 7):
        continuation = head[np.minimum(4 + index, _HEADER_MAX)]
        valid &= (extra < index) | (continuation & 0xC0 == 0x80)
    after_number = 5 + extra  # header bytes so far
    size_field = np.where(block_code == 6, 1, np.where(block_code == 7, 2, 0))
    rows = np.arange(at.size)
    low = head[np.minimum(after_number, _HEADER_MAX), rows]
    high = head[np.minimum(after_number + 1, _HEADER_MAX), rows]
    block_size = np.select(
        [block_code == 1, (block_code >= 2) & (block_code <= 5), block_code == 6, block_code == 7, block_code >= 8],
        [
            np.full(at.size, 192),
            576 << np.clip(block_code - 2, 0, 3),
            low + 1,
            (low << 8 | high) + 1,
            256 << np.clip(block_code - 8, 0, 7),
        ],
        0,
    )
    rate_field = np.where(rate_code == 12, 1, np.where((rate_code == 13) | (rate_code == 14), 2, 0))
    length = after_number + size_field + rate_field  # the header before its CRC-8
    valid &= (at + length < size) & (block_size > 0)
    # The CRC-8 of each header's first ``index`` bytes, for every index; each header's own length picks its column.
    crcs = np.zeros((_HEADER_MAX + 1, at.size), dtype=np.int64)
    for index in range(_HEADER_MAX):
        crcs[index + 1] = table[crcs[index] ^ head[index]]
    clamped = np.minimum(length, _HEADER_MAX)
    valid &= crcs[clamped, rows] == head[clamped, rows]
    return np.where(valid, block_size, 0).astype(np.int64), head


def _walk_sequentially(data: mmap.mmap, first: _Frame, sample_rate: int) -> AudioLength | None:
    """From the first frame, every next CRC-8-valid header of the same stream, whatever its number."""
    start = first.offset
    same_stream = (first.variable, first.rate_code, first.channel_count, first.depth_code)
    sync = b"\xff\xf9" if first.variable else b"\xff\xf8"
    # In a fixed-block-size stream every frame but the last starts with the first frame's four bytes, then its number.
    lead = bytes(data[start : start + 4]) if not first.variable else None
    total = first.block_size
    previous = first
    strays = 0
    while True:
        expected = _next_position(previous)
        frame = None
        if lead is not None:
            window = previous.offset + _NEXT_FRAME_WINDOW
            found = data.find(lead + _coded_number(expected), previous.offset + 1, window)
            # Only if it is the very next sync pattern: no frame may be skipped, whatever its number.
            if found >= 0 and data.find(sync, previous.offset + 1, found + 2) == found:
                frame = _parse_frame(data, found)
        if frame is None or frame.number != expected:
            # The general search: the last frame (another block size), a variable-block-size stream, or a renumbering.
            position = previous.offset
            frame = None
            while (position := data.find(sync, position + 1)) >= 0:
                candidate = _parse_frame(data, position)
                if (
                    candidate is not None
                    and (candidate.variable, candidate.rate_code, candidate.channel_count, candidate.depth_code)
                    == same_stream
                ):
                    frame = candidate  # whatever its number: decoders play it where it is
                    break
                strays += 1  # a sync pattern inside a frame's data
                if strays > _MAX_STRAYS:
                    return None  # stuffed with sync patterns: ffprobe's parser counts it, in C, under its deadline
        if frame is None:
            # The last frame counts whole: exact for a complete file, at most one frame over for one cut inside it.
            return AudioLength(total, sample_rate)
        total += frame.block_size
        previous = frame
