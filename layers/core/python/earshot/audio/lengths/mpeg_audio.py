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

from earshot.audio.lengths.common import AudioLength

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
    frames = 0
    reference = stream.reference
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
    total = frames * stream.samples - delay
    if stream.layer == 3 and (delay or padding):
        # The encoder's end padding applies only to the file the encoder wrote: same frames or same bytes.
        intact = claimed_frames == frames or claimed_bytes == min(position, size) - stream_start
        total -= padding if intact else _DECODER_DELAY
    return AudioLength(max(0, total), stream.rate)
