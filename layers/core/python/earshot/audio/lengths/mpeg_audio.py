"""MPEG audio (mp3, mp2): every frame walked, the Xing/Info frame skipped, the LAME tag's delay and padding dropped.

A Xing header's frame count is a claim; the frames are walked instead (each header gives the next frame's
offset, so the walk reads four bytes per frame). A LAME/Lavf tag's encoder delay is trimmed from the start,
as decoders do; its end padding only when the walk found exactly the frames the tag describes (a cut or
extended file's end is not the encoder's end). Without that end trim a decoder still drops its own 529-sample
delay from the output, and it decodes a final frame cut short as a whole frame.
"""

from __future__ import annotations

import functools
import mmap
import struct
from typing import TYPE_CHECKING

from earshot.audio.lengths import compiled
from earshot.audio.lengths.common import AudioLength

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_BITRATES = {
    # (version is MPEG-1, layer) -> kbit/s by index
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_WORD = struct.Struct(">I")
# The MPEG layer III decoder's own delay: decoders drop it at the start and (with a LAME tag) add it at the end.
_DECODER_DELAY = 529
# Sync, version, layer and sample rate must stay those of the first frame; bitrate and padding may change.
_STREAM_MASK = 0xFFFE0C00
_RESYNC_WINDOW = 64 * 1024
# The lockstep walk (``_walk_in_lockstep``): below this many bytes the sequential walk is as quick.
_LOCKSTEP_MIN_BYTES = 1024 * 1024
# Walkers: one per stretch of at least this many bytes, at most this many walkers.
_WALKER_MIN_BYTES = 4 * 1024
_WALKERS = 1024
# A walker's start is the first frame in this many bytes after its stretch begins (two of the longest frames).
_ANCHOR_WINDOW = 4096
# Lost syncs and unverified stretches the lockstep walk resumes from before the sequential walk takes over.
_MAX_RESUMES = 32


class _Stream:
    """Frame sizes for one (version, layer, sample rate), indexed by bitrate and padding bits."""

    def __init__(self, header: int) -> None:
        version_bits, layer_bits = (header >> 19) & 3, (header >> 17) & 3
        rate_index = (header >> 10) & 3
        self.layer = 4 - layer_bits
        mpeg1 = version_bits == 3
        self.rate = _RATES[version_bits][rate_index]
        self.samples = 384 if self.layer == 1 else (1152 if mpeg1 or self.layer == 2 else 576)
        self.mpeg1 = mpeg1
        self.reference = header & _STREAM_MASK
        bitrates = _BITRATES[(mpeg1, self.layer)]
        self.sizes = [0] * 32
        for index in range(1, 15):
            for padding in (0, 1):
                bits = bitrates[index] * 1000
                if self.layer == 1:
                    size = (12 * bits // self.rate + padding) * 4
                else:
                    size = (self.samples // 8) * bits // self.rate + padding
                self.sizes[(index << 1) | padding] = size


@functools.lru_cache(maxsize=64)
def _frame_sizes(reference: int) -> list[int]:
    """The frame size for bytes 1-2 of a header (version, layer, protection; bitrate, rate, padding) of the stream
    ``reference`` names, 0 where they are not that stream's (another version, layer or sample rate)."""
    stream = _Stream(reference | 0x1000)  # any valid bitrate index: the sizes depend on the other fields only
    second_byte = (reference >> 16) & 0xFE
    table = [0] * 65536
    for second in (second_byte, second_byte | 1):  # the protection bit may differ per frame
        for third in range(256):
            if (third >> 2) & 3 == (reference >> 10) & 3:
                table[second << 8 | third] = stream.sizes[(third >> 4) << 1 | (third >> 1) & 1]
    return table


def _size_index(header: int) -> int:
    """Bitrate index and padding bit: what a frame's size depends on once the stream is known."""
    return (header >> 11) & 0x1E | (header >> 9) & 1


def _valid_header(header: int) -> bool:
    return (
        header >> 21 == 0x7FF
        and (header >> 19) & 3 != 1
        and (header >> 17) & 3 != 0
        and (header >> 12) & 0xF not in (0, 15)
        and (header >> 10) & 3 != 3
    )


def _id3v2_end(data: mmap.mmap) -> int:
    position = 0
    while data[position : position + 3] == b"ID3" and position + 10 <= len(data):
        size = 0
        for byte in data[position + 6 : position + 10]:
            size = (size << 7) | (byte & 0x7F)
        footer = 10 if data[position + 5] & 0x10 else 0
        position += 10 + size + footer
    return position


def _find_stream(data: mmap.mmap, position: int, limit: int) -> tuple[int, _Stream] | None:
    """The next offset where two consecutive valid frames of one stream start."""
    size = len(data)
    while (position := data.find(b"\xff", position, limit)) >= 0:
        if position + 4 > size:
            return None
        header = _WORD.unpack_from(data, position)[0]
        if _valid_header(header):
            stream = _Stream(header)
            length = stream.sizes[_size_index(header)]
            following = position + length
            if following + 4 > size:
                if following <= size:
                    return position, stream  # a one-frame file
            elif _WORD.unpack_from(data, following)[0] & _STREAM_MASK == stream.reference:
                return position, stream
        position += 1
    return None


def _lame_trim(
    data: mmap.mmap, position: int, stream: _Stream, header: int
) -> tuple[bool, int | None, int | None, int, int]:
    """Whether the frame at ``position`` is a Xing/Info/VBRI frame, its frame and byte counts, LAME delay/padding."""
    mono = (header >> 6) & 3 == 3
    side = (17 if mono else 32) if stream.mpeg1 else (9 if mono else 17)
    xing = position + 4 + side
    tag = data[xing : xing + 4]
    if tag == b"VBRI" or data[position + 36 : position + 40] == b"VBRI":
        return True, None, None, 0, 0
    if tag not in (b"Xing", b"Info"):
        return False, None, None, 0, 0
    flags = int.from_bytes(data[xing + 4 : xing + 8], "big")
    cursor = xing + 8
    frames = stream_bytes = None
    if flags & 1:
        frames = int.from_bytes(data[cursor : cursor + 4], "big")
        cursor += 4
    if flags & 2:
        stream_bytes = int.from_bytes(data[cursor : cursor + 4], "big")
        cursor += 4
    cursor += (100 if flags & 4 else 0) + (4 if flags & 8 else 0)
    delay = padding = 0
    if data[cursor : cursor + 4] in (b"LAME", b"Lavf", b"Lavc", b"GOGO", b"L3.9"):
        packed = int.from_bytes(data[cursor + 21 : cursor + 24], "big")
        delay, padding = packed >> 12, packed & 0xFFF
    return True, frames, stream_bytes, delay, padding


def mp3_length(data: mmap.mmap, codec: str, sample_rate: int) -> AudioLength | None:
    if codec not in ("mp3", "mp2", "mp1"):
        return None
    size = len(data)
    found = _find_stream(data, _id3v2_end(data), min(size, _RESYNC_WINDOW))
    if found is None:
        return AudioLength(0, sample_rate)
    position, stream = found
    header = _WORD.unpack_from(data, position)[0]
    stream_start = position
    info_frame, claimed_frames, claimed_bytes, delay, padding = _lame_trim(data, position, stream, header)
    if info_frame:
        position += stream.sizes[_size_index(header)]
    frames, position = _walk(data, position, stream.reference)
    total = frames * stream.samples - delay
    if stream.layer == 3 and (delay or padding):
        # The encoder's end padding applies only to the file the encoder wrote: same frames or same bytes.
        intact = claimed_frames == frames or claimed_bytes == min(position, size) - stream_start
        total -= padding if intact else _DECODER_DELAY
    return AudioLength(max(0, total), stream.rate)


def _walk(data: mmap.mmap, position: int, reference: int) -> tuple[int, int]:
    """(frames, where the walk stopped) for the frames of stream ``reference`` from ``position``.

    Exactly the frames ``_walk_sequentially`` counts: with its hot loop compiled (``walkers.c``) where the library
    is built. Without it, large files are walked by ``_walk_in_lockstep`` (numpy); where it cannot vouch for a
    stretch it resumes from the last frame it could, and a file that makes it resume too often (junk between
    frames) is finished sequentially.
    """
    size = len(data)
    frames = 0
    walkers = compiled.compiled_walkers()
    if walkers is not None:
        sizes, mapped = _compiled_frame_sizes(reference), compiled.Mapped(data)
        while True:
            more, position = walkers.mpeg_frames(mapped, position=position, sizes=sizes)
            frames += more
            if position + 4 > size:
                return frames, position
            # Lost sync: junk, a tag, or a cut frame. Frames of the same stream further on still decode.
            again = _find_stream(data, position + 1, size)
            if again is None or again[1].reference != reference:
                return frames, position
            position = again[0]
    for _ in range(_MAX_RESUMES):
        if size - position < _LOCKSTEP_MIN_BYTES:
            break
        counted, position, stop = _walk_in_lockstep(data, position, reference)
        frames += counted
        if stop == "end":
            return frames, position
        if stop == "lost":  # junk, a tag, or a cut frame: frames of the same stream further on still decode
            again = _find_stream(data, position + 1, size)
            if again is None or again[1].reference != reference:
                return frames, position
            position = again[0]
        # "unverified": ``position`` is on the chain; walk on from there
    more, position = _walk_sequentially(data, position, reference)
    return frames + more, position


def _walk_in_lockstep(data: mmap.mmap, position: int, reference: int) -> tuple[int, int, str]:
    """(frames, position, why it stopped) walking the chain from ``position`` with many walkers at once.

    The file is cut into stretches; a walker starts at the first frame-like offset of each (the first starts at
    ``position``) and all of them step one frame per numpy operation until each reaches the next walker's start.
    Walker ``k`` is on the true chain when walker ``k - 1`` (on it) lands exactly on its start: the chain from
    ``position`` is then the verified walkers' frames, in order. The first walker that does not land on its
    successor's start ends the result: why it stopped is ``"end"`` (the file ends, or its last frame is cut
    short: counted, as decoders decode it), ``"lost"`` (sync lost at ``position``) or ``"unverified"``
    (``position`` is on the chain but the next walker's start was not: a false sync, to walk on from).
    """
    import numpy as np

    size = len(data)
    last = size - 4  # the sequential walk reads a header only where four bytes remain
    buffer = np.frombuffer(data, dtype=np.uint8)
    sizes = _frame_sizes(reference)
    table = _size_array(reference)
    stretch = max(_WALKER_MIN_BYTES, (size - position) // _WALKERS)
    starts = [position]
    for anchor in range(position + stretch, last + 1, stretch):
        found = _first_frame(data, sizes, anchor, min(anchor + _ANCHOR_WINDOW, last + 1))
        if found is not None and found > starts[-1]:
            starts.append(found)
    begin = np.asarray(starts, dtype=np.int64)
    target = np.append(begin[1:], np.iinfo(np.int64).max)
    at = begin.copy()
    counts = np.zeros(begin.size, dtype=np.int64)
    stops = np.zeros(begin.size, dtype=np.int8)  # 0 walking, then one of _STOPS
    walking = np.arange(begin.size)
    while walking.size:
        here = at[walking]
        ended = here > last
        stops[walking[ended]] = _END
        walking, here = walking[~ended], here[~ended]
        length = table[buffer[here + 1].astype(np.intp) << 8 | buffer[here + 2]]
        lost = (buffer[here] != 0xFF) | (length == 0)
        stops[walking[lost]] = _LOST
        walking, here, length = walking[~lost], here[~lost], length[~lost]
        counts[walking] += 1
        following = here + length
        cut = following > size
        at[walking] = np.where(cut, size, following)
        stops[walking[cut]] = _END
        reached = ~cut & (following >= target[walking])
        stops[walking[reached]] = _REACHED
        walking = walking[~cut & ~reached]
    verified = (stops == _REACHED) & (at == target)
    first_stop = int(np.argmin(verified)) if not verified.all() else begin.size - 1
    frames = int(counts[: first_stop + 1].sum())
    stop = int(stops[first_stop])
    why = "end" if stop == _END else "lost" if stop == _LOST else "unverified"
    return frames, int(at[first_stop]), why


_END, _LOST, _REACHED = 1, 2, 3


def _first_frame(data: mmap.mmap, sizes: list[int], start: int, stop: int) -> int | None:
    """The first offset in ``[start, stop)`` that starts a frame of the stream and whose next frame does too."""
    size = len(data)
    position = start
    while (position := data.find(b"\xff", position, stop)) >= 0:
        length = sizes[data[position + 1] << 8 | data[position + 2]]
        following = position + length
        chained = following + 3 <= size and data[following] == 0xFF
        if length and chained and sizes[data[following + 1] << 8 | data[following + 2]]:
            return position
        position += 1
    return None


def _walk_sequentially(data: mmap.mmap, position: int, reference: int) -> tuple[int, int]:
    """(frames, where the walk stopped): one Python step per frame, resyncing on the same stream after junk."""
    size = len(data)
    frames = 0
    sizes = _frame_sizes(reference)
    view = memoryview(data)  # indexing a memoryview is faster than indexing the mmap
    try:
        last = size - 4
        while True:
            # The hot loop: three byte reads and a table lookup per frame.
            while position <= last:
                if view[position] != 0xFF:
                    break
                length = sizes[view[position + 1] << 8 | view[position + 2]]
                if not length:
                    break
                if position + length > size:
                    frames += 1  # cut short: decoders still decode it, as one whole frame
                    position = size
                    break
                position += length
                frames += 1
            else:
                break
            if position + 4 > size:
                break
            # Lost sync: junk, a tag, or a cut frame. Frames of the same stream further on still decode.
            again = _find_stream(data, position + 1, size)
            if again is None or again[1].reference != reference:
                break
            position = again[0]
    finally:
        view.release()  # the mmap cannot close while a view of it is alive
    return frames, position


@functools.lru_cache(maxsize=64)
def _compiled_frame_sizes(reference: int) -> compiled.FrameSizes:
    """``_frame_sizes`` as the compiled walk reads it."""
    return compiled.FrameSizes(_frame_sizes(reference))


@functools.lru_cache(maxsize=64)
def _size_array(reference: int) -> npt.NDArray[np.int64]:
    """``_frame_sizes`` as a numpy array."""
    import numpy as np

    return np.asarray(_frame_sizes(reference), dtype=np.int64)
