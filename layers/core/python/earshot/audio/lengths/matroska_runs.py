"""Runs of consecutive Opus SimpleBlocks, found for the whole file at once, for ``matroska_length`` to jump along.

``matroska_length`` walks a cluster one block at a time (about a microsecond each in Python: 50 ms for the 60,000
blocks of a 20-minute WebM). Nearly all of them are SimpleBlocks in the form its fast path reads (a 1- or 2-byte
size, the track's 1-byte number, no lacing), back to back. Here every offset holding such a block is found in one
vectorised scan (a 0xA3 byte whose next bytes parse as that form; payload bytes rarely do), and blocks that end
exactly where the next one starts are grouped into runs, with their Opus samples summed. Wherever the walk's fast
path would take a block that starts a run here, it takes the whole run instead (cut at the cluster's end): the
blocks, samples and end position are exactly those the block-by-block fast path would reach. A false candidate in
the scan only splits a run (the walk then takes two jumps); it is never jumped to, since the walk only jumps from
where its own element-by-element walk stands.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from earshot.audio.lengths.codecs import opus_packet_samples

_SIMPLE_BLOCK = 0xA3
# The scan's block: small enough that its comparison mask stays in cache.
_SCAN_BLOCK = 1 << 18


@dataclass(frozen=True)
class Jump:
    """Blocks taken in one jump: how many, their samples, the last one's samples, and where the walk goes on."""

    blocks: int
    samples: int
    last_samples: int
    position: int


class OpusBlockRuns:
    """The fast-form SimpleBlocks of one Opus track, in runs of blocks that follow each other."""

    def __init__(self, data: mmap.mmap, start: int, track_byte: int) -> None:
        size = len(data)
        buffer = np.frombuffer(data, dtype=np.uint8)
        # matroska_length's fast path: position + 3 < size, then the size, track and flags bytes.
        at = sync_offsets(data, _SIMPLE_BLOCK, start, max(start, size - 3))
        lead = buffer[at + 1].astype(np.int64)
        low = buffer[at + 2]
        one = (lead >= 0x80) & (lead != 0xFF)
        two = (lead >= 0x40) & (lead < 0x80) & ((lead != 0x7F) | (low != 0xFF))
        body = at + 3 - one
        end = body + np.where(one, lead & 0x7F, (lead & 0x3F) << 8 | low)
        fast = (one | two) & (end <= size) & (end - body > 4)
        at, body, end = at[fast], body[fast], end[fast]
        fast = (buffer[body] == track_byte) & (buffer[body + 3] & 0x06 == 0)
        at, body, end = at[fast], body[fast], end[fast]
        second = np.where(end - body > 5, buffer[np.minimum(body + 5, size - 1)], 0).astype(np.uint8)
        samples = opus_packet_samples(buffer[body + 4], second)
        self._starts: npt.NDArray[np.int64] = at
        self._ends: npt.NDArray[np.int64] = end
        self._samples: npt.NDArray[np.int64] = samples
        self._before = np.concatenate(([0], np.cumsum(samples)))  # samples of the blocks before each one
        # The last block of each block's run: a run ends where the next candidate does not start at its end.
        run_ends = np.flatnonzero(np.append(end[:-1] != at[1:], True))
        self._run_last = run_ends[np.searchsorted(run_ends, np.arange(at.size))]

    def jump(self, position: int, limit: int) -> Jump | None:
        """The run of blocks from the one at ``position`` up to (not from) ``limit``; ``None`` if none starts there."""
        index = int(np.searchsorted(self._starts, position))
        if index >= self._starts.size or self._starts[index] != position:
            return None
        last = int(self._run_last[index])
        if self._starts[last] >= limit:  # the walk stops taking blocks at the cluster's end
            last = int(np.searchsorted(self._starts, limit)) - 1
        return Jump(
            blocks=last - index + 1,
            samples=int(self._before[last + 1] - self._before[index]),
            last_samples=int(self._samples[last]),
            position=int(self._ends[last]),
        )


def sync_offsets(data: mmap.mmap, value: int, start: int, stop: int) -> npt.NDArray[np.int64]:
    """Offsets in ``[start, stop)`` whose byte is ``value``, ascending."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    found = [
        np.flatnonzero(buffer[block : min(block + _SCAN_BLOCK, stop)] == value) + block
        for block in range(start, stop, _SCAN_BLOCK)
    ]
    return np.concatenate(found).astype(np.int64) if found else np.zeros(0, dtype=np.int64)
