"""Chains of length-prefixed records (FLV tags, RIFF chunks) followed with numpy, many walkers in lockstep.

A container that frames its audio in records, each stating its own length, has no index a reader may trust: the
records are found by following the chain from the first, each length pointing at the next. One Python step per
record costs a microsecond or more (50,000 tags in a 20-minute FLV: 50 ms, ten times ``cat``); here the chain is
cut into stretches, a walker starts at a record found near each stretch's start (``anchor``), and all walkers step
one record per numpy operation until each reaches the next walker's start. A walker whose predecessor lands exactly
on its start is on the true chain; one that started on a false record is dropped and the chain is followed on from
where its predecessor landed (usually onto the same records, since chains converge). The nodes returned are exactly
those a sequential walk from ``start`` visits (``chain_sequentially``, the reference the tests hold it to).

Where the compiled walkers are built (``walkers.c``), the FLV and AVI chains are walked there in one pass instead (a
20-minute FLV: 0.3-1 ms against 18 ms here); these walks are the fallback, held to the same reference.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Callable
from typing import cast

import numpy as np
import numpy.typing as npt

from earshot.audio.lengths import compiled
from earshot.audio.lengths.mpeg_audio import (
    _WORD,
    _compiled_frame_sizes,
    _find_stream,
    _size_array,
    _Stream,
    _valid_header,
    _walk,
)

Offsets = npt.NDArray[np.int64]
# For record offsets (each with ``header`` bytes in the file): which are records, and the next record's offset. It
# reads past ``header`` only where it checked the file has the bytes.
Advance = Callable[[Offsets], "tuple[npt.NDArray[np.bool_], Offsets]"]
# The first offset in [start, stop) that looks like a record, or ``None``.
Anchor = Callable[[int, int], "int | None"]

# Walkers: about the square root of a file's size in bytes / 8 (a minute of FLV: 250, twenty minutes: 1,200), which
# balances their starts (a ``find`` each) against the lockstep iterations (a few dozen numpy calls each).
_MIN_STRETCH = 1024
_MAX_WALKERS = 4096
# How far after a stretch's start its walker's first record is looked for.
_ANCHOR_WINDOW = 8 * 1024
# Rounds of lockstep walking (each after a walker could not be joined to the chain) before one walker goes on alone.
_MAX_ROUNDS = 16
_NONE = np.iinfo(np.int64).max


def chain(
    size: int, start: int, *, header: int, advance: Advance, anchor: Anchor, hint: Offsets | None = None
) -> tuple[Offsets, int]:
    """(offsets of the records chained from ``start``, in order; the offset where the chain stopped).

    A record is an offset with ``header`` bytes left in the file that ``advance`` accepts; the chain stops at the
    first offset that is not one (past the end of the file, or a record ``advance`` refuses), and returns it.
    ``advance`` must point each record past itself. ``hint``: offsets the chain is expected to visit from ``start``
    (an index): taken as far as the records themselves confirm them, each accepted and pointing at the next, in one
    pass; the walk goes on from where they stop agreeing.
    """
    parts: list[Offsets] = []
    position = start
    if hint is not None and hint.size and int(hint[0]) == start:
        confirmed, position = _confirmed(size, hint, header=header, advance=advance)
        parts.append(confirmed)
        if confirmed.size < hint.size and position == int(hint[confirmed.size]):
            return _concatenated(parts), position  # refused: the chain stops there
    for _ in range(_MAX_ROUNDS):
        nodes, position, done = _round(size, position, header=header, advance=advance, anchor=anchor)
        parts.append(nodes)
        if done:
            return _concatenated(parts), position
    walk = _lockstep(size, np.asarray([position], dtype=np.int64), header=header, advance=advance)
    parts.append(walk.nodes(0))
    return _concatenated(parts), int(walk.exits[0])


def _confirmed(size: int, hint: Offsets, *, header: int, advance: Advance) -> tuple[Offsets, int]:
    """(the longest prefix of ``hint`` that is a chain: each a record pointing at the next; where it goes on)."""
    inside = hint + header <= size
    ok = inside.copy()
    following = hint + 1
    if inside.any():
        ok[inside], following[inside] = advance(hint[inside])
    links = ok[:-1] & (following[:-1] == hint[1:])
    broken = np.flatnonzero(~links)
    last = int(broken[0]) if broken.size else hint.size - 1
    if not ok[last]:
        return hint[:last], int(hint[last])
    return hint[: last + 1], int(following[last])


def chain_sequentially(size: int, start: int, *, header: int, advance: Advance) -> tuple[Offsets, int]:
    """``chain`` one record at a time (the reference for tests; slow)."""
    nodes: list[int] = []
    position = start
    while position + header <= size:
        ok, following = advance(np.asarray([position], dtype=np.int64))
        if not bool(ok[0]):
            break
        nodes.append(position)
        position = int(following[0])
    return np.asarray(nodes, dtype=np.int64), position


def _concatenated(parts: list[Offsets]) -> Offsets:
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


class _Walk:
    """The walkers' records: ``nodes(k)`` walker k's, in order; ``exits`` where each stopped; ``reached`` whether it
    stopped at (or past) the next walker's start rather than at a non-record."""

    def __init__(
        self,
        walkers: int,
        steps: list[Offsets],
        ids: list[npt.NDArray[np.intp]],
        exits: Offsets,
        reached: npt.NDArray[np.bool_],
    ) -> None:
        positions = np.concatenate(steps) if steps else np.zeros(0, dtype=np.int64)
        owners = np.concatenate(ids) if ids else np.zeros(0, dtype=np.intp)
        # Records were produced step by step; a stable sort by walker keeps each walker's in step order.
        order = np.argsort(owners, kind="stable")
        self._positions = positions[order]
        self._bounds = np.searchsorted(owners[order], np.arange(walkers + 1))
        self.counts = np.diff(self._bounds)
        self.exits = exits
        self.reached = reached

    def nodes(self, walker: int, first: int = 0) -> Offsets:
        found: Offsets = self._positions[self._bounds[walker] + first : self._bounds[walker + 1]]
        return found

    def span(self, first: int, last: int) -> Offsets:
        """The records of walkers ``first`` to ``last`` (inclusive), in order."""
        found: Offsets = self._positions[self._bounds[first] : self._bounds[last + 1]]
        return found


def _round(size: int, start: int, *, header: int, advance: Advance, anchor: Anchor) -> tuple[Offsets, int, bool]:
    """(records, where the walk is, whether the chain is done): walkers from anchors after ``start``, joined in order
    as far as each joins its predecessor's landing; not done when one could not be joined (walk on from there)."""
    span = max(1, size - start)
    walkers = min(_MAX_WALKERS, max(1, math.isqrt(span // 8)))
    stretch = max(_MIN_STRETCH, span // walkers)
    starts = [start]
    for at in range(start + stretch, size - header + 1, stretch):
        found = anchor(max(at, starts[-1] + 1), min(at + _ANCHOR_WINDOW, size - header + 1))
        if found is not None and found > starts[-1]:
            starts.append(found)
    begin = np.asarray(starts, dtype=np.int64)
    walk = _lockstep(size, begin, header=header, advance=advance)
    # Walker k joins when walker k - 1 landed exactly on its start (the usual case: checked for all at once).
    joins = walk.reached[:-1] & (walk.exits[:-1] == begin[1:]) & (walk.counts[1:] > 0)
    parts: list[Offsets] = []
    walker, first = 0, 0
    while True:
        following = np.flatnonzero(~joins[walker:])
        last = walker + int(following[0]) if following.size else len(starts) - 1
        parts.append(walk.nodes(walker, first))
        if last > walker:
            parts.append(walk.span(walker + 1, last))
        if last == len(starts) - 1 or not walk.reached[last]:
            return _concatenated(parts), int(walk.exits[last]), True
        landing = int(walk.exits[last])
        rows = np.flatnonzero(walk.nodes(last + 1) == landing)
        if not rows.size:
            return _concatenated(parts), landing, False  # a walker on false records: walk on from the landing
        walker, first = last + 1, int(rows[0])  # it fell onto the chain further on


def _lockstep(size: int, begin: Offsets, *, header: int, advance: Advance) -> _Walk:
    """Every walker steps one record per iteration until it reaches the next walker's start or a non-record."""
    target = np.append(begin[1:], _NONE)
    at = begin.copy()
    reached = np.zeros(begin.size, dtype=bool)
    walking = np.arange(begin.size)
    last = size - header
    steps: list[Offsets] = []
    ids: list[npt.NDArray[np.intp]] = []
    while walking.size:
        here = at[walking]
        ok, following = advance(np.minimum(here, last))
        ok &= here <= last
        walking, here, following = walking[ok], here[ok], following[ok]
        steps.append(here)
        ids.append(walking)
        at[walking] = following
        done = following >= target[walking]
        reached[walking[done]] = True
        walking = walking[~done]
    return _Walk(begin.size, steps, ids, at, reached)


class Bytes:
    """Eight bytes at any offsets of a file, gathered for many offsets at once from its aligned 64-bit words: two
    aligned gathers and a shift per offset (gathering byte by byte, or through a view of unaligned words, costs
    several times more). Bytes past the end of the file read as zero."""

    def __init__(self, data: mmap.mmap) -> None:
        count = len(data) // 8
        self._words = np.frombuffer(data, dtype="<u8", count=count)
        # The file's last words, its partial last word and zeros: where offsets near the end read.
        self._last = max(0, count - 2)
        self._tail = np.frombuffer(bytes(data[self._last * 8 :]).ljust((count - self._last) * 8 + 16, b"\0"), "<u8")

    def little(self, at: Offsets) -> npt.NDArray[np.uint64]:
        """The eight bytes at each offset as a little-endian number."""
        index = at >> 3
        shift = ((at & 7) << 3).astype(np.uint64)
        if index.size and int(index.max()) + 1 >= self._words.size:
            late = index + 1 >= self._words.size
            early = ~late
            low, high = np.empty(index.size, dtype=np.uint64), np.empty(index.size, dtype=np.uint64)
            low[early], high[early] = self._words[index[early]], self._words[index[early] + 1]
            low[late], high[late] = self._tail[index[late] - self._last], self._tail[index[late] + 1 - self._last]
        else:
            low, high = self._words[index], self._words[index + 1]
        value: npt.NDArray[np.uint64] = (low >> shift) | ((high << (np.uint64(63) - shift)) << np.uint64(1))
        return value

    def big(self, at: Offsets) -> npt.NDArray[np.uint64]:
        """The eight bytes at each offset as a big-endian number."""
        value: npt.NDArray[np.uint64] = self.little(at).byteswap()
        return value


def mp3_payload_samples(data: mmap.mmap, starts: Offsets, lengths: Offsets) -> tuple[int, int] | None:
    """(samples, rate) of the MPEG audio stream carried in the records' payloads (``starts``, ``lengths``, in the file),
    as ffmpeg's parser re-frames it; ``None`` when no stream is found.

    When every payload but the last is exactly one whole frame of the first payload's stream (what muxers write), the
    records are the frames and the last payload is walked alone; otherwise the payloads are joined and walked with the
    MPEG audio walker (``mpeg_audio._walk``: a cut last frame counts, as decoders decode it).
    """
    if not starts.size:
        return None
    if int(starts[0]) + 4 <= len(data):
        first = _WORD.unpack_from(data, int(starts[0]))[0]
        if _valid_header(first):
            stream = _Stream(first)
            if _one_frame_each(data, starts, lengths, stream.reference):
                last = _joined(data, starts[-1:], lengths[-1:])
                tail = _walk(cast(mmap.mmap, last), 0, stream.reference)[0]
                return (starts.size - 1 + tail) * stream.samples, stream.rate
    joined = _joined(data, starts, lengths)
    found = _find_stream(cast(mmap.mmap, joined), 0, min(len(joined), 64 * 1024))
    if found is None:
        return None
    position, stream = found
    frames, _ = _walk(cast(mmap.mmap, joined), position, stream.reference)
    return frames * stream.samples, stream.rate


def mp3_checked_samples(
    data: mmap.mmap, records: int, check: compiled.MpegRecords, reference: int
) -> tuple[int, int] | None:
    """``mp3_payload_samples`` for ``records`` records whose shortcut test a compiled chain walk made as it found them
    (``check``), against the frame sizes of stream ``reference`` (the caller's expectation): the same (samples, rate)
    when the first record opens a frame of that very stream and each record but the last is one whole frame; ``None``
    otherwise (the caller then hands the records' payloads to ``mp3_payload_samples``)."""
    if records < 1 or check.first < 0 or not _valid_header(check.first):
        return None
    stream = _Stream(check.first)
    if stream.reference != reference or not check.one_frame_each:
        return None  # another stream than expected (the test used another table), or not one frame per record
    start, length = check.last
    last = _joined(data, np.asarray([start], dtype=np.int64), np.asarray([length], dtype=np.int64))
    tail = _walk(cast(mmap.mmap, last), 0, stream.reference)[0]
    return (records - 1 + tail) * stream.samples, stream.rate


def expected_mp3_reference(payload: bytes) -> int | None:
    """The MPEG audio stream (``_Stream.reference``) whose frame header ``payload`` opens, if it opens one."""
    if len(payload) < 4:
        return None
    header = _WORD.unpack_from(payload, 0)[0]
    return _Stream(header).reference if _valid_header(header) else None


def _one_frame_each(data: mmap.mmap, starts: Offsets, lengths: Offsets, reference: int) -> bool:
    """Whether every record has 4 bytes in the file and holds 4 or more, each but the last is exactly one whole frame
    of stream ``reference`` and the last starts one; in C where the library is built."""
    walkers = compiled.compiled_walkers()
    if walkers is not None:
        sizes = _compiled_frame_sizes(reference)
        return walkers.mpeg_records(compiled.Mapped(data), starts=starts, lengths=lengths, sizes=sizes)
    if int(starts.max()) + 4 > len(data) or int(lengths.min()) < 4:
        return False
    buffer = np.frombuffer(data, dtype=np.uint8)
    sizes = _size_array(reference)[buffer[starts + 1].astype(np.int64) << 8 | buffer[starts + 2]]
    whole = (buffer[starts] == 0xFF) & (sizes == lengths)
    return bool(whole[:-1].all() and sizes[-1] > 0 and buffer[starts[-1]] == 0xFF)


def _joined(data: mmap.mmap, starts: Offsets, lengths: Offsets) -> bytes:
    view = memoryview(data)
    try:
        return b"".join([view[s : s + n] for s, n in zip(starts.tolist(), lengths.tolist(), strict=True)])
    finally:
        view.release()  # the mmap cannot close while a view of it is alive
