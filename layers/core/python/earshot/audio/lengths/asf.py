"""ASF (WMA v1/v2): the audio blocks actually present in the data packets, counted by what the decoder makes of them.

An ASF file is a header (a flat run of objects as ffmpeg's ``asfdec_f`` reads it, the Header Extension's objects
included) and a Data object of fixed-size packets. Each packet holds one or more payloads; a payload is a fragment
of a media object of one stream (its offset in the object and the object's size in the payload header). ffmpeg's
demuxer reassembles the audio stream's objects from their fragments and hands each whole object to the WMA decoder,
which decodes it ``block_align`` bytes at a time (a shorter rest is refused). Without the bit reservoir (the
stream's ``extradata`` flags; ffmpeg's own encoder never sets it) every block is one frame of ``frame_len`` samples
(512, 1024 or 2048 by rate and version), and ffmpeg's decoder drops its first two frames and adds one at the end
(its delay): ``F`` blocks decode to ``max(0, F - 1)`` frames, which is what is billed.

With the bit reservoir a block is a superframe whose 4-bit frame count is one too many when the previous superframe
left no bits over, which only decoding its frames tells; a forged count is likewise refuted only by decoding. That
case is left to ffprobe (``identify_asf`` names no such file and ``asf_length`` returns ``None``), as are WMA Pro,
Lossless and Voice, files with more than one stream or no audio stream, encrypted files (Content Encryption objects),
scrambled audio (an audio spread span above 1), variable-size packets, packets without the standard error correction
bytes, compressed payloads, and any packet or fragment that does not parse as ffmpeg would parse it without
resynchronising (junk inside the data, a damaged header): the walk then returns ``None`` and ffprobe counts.

The File Properties play and send durations, packet count and every timestamp are never read. The packets walked are
those that start inside the Data object (its stated size is where ffmpeg's demuxer stops too) and in the file; a
fragment cut by the file's end delivers the bytes present, as ffmpeg's demuxer does, and those make whole blocks or
none. The packets are parsed in C (``walkers.c``, one after the other) where the library is built, else all at once
with numpy, one payload per packet per step (a few steps for any file); both give the same fragments (tested).
"""

from __future__ import annotations

import mmap
import struct
import uuid
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from earshot.audio.lengths import compiled
from earshot.audio.lengths.chains import Offsets
from earshot.audio.lengths.common import AudioLength, Identified


def _guid(text: str) -> bytes:
    return uuid.UUID(text).bytes_le


_HEADER = _guid("75b22630-668e-11cf-a6d9-00aa0062ce6c")
_DATA = _guid("75b22636-668e-11cf-a6d9-00aa0062ce6c")
_FILE_PROPERTIES = _guid("8cabdca1-a947-11cf-8ee4-00c00c205365")
_STREAM_PROPERTIES = _guid("b7dc0791-a9b7-11cf-8ee6-00c00c205365")
_HEADER_EXTENSION = _guid("5fbf03b5-a92e-11cf-8ee3-00c00c205365")
_EXTENDED_STREAM_PROPERTIES = _guid("14e6a5cb-c672-4332-8399-a96952065b5a")
_AUDIO_MEDIA = _guid("f8699e40-5b4d-11cf-a8fd-00805f5c442b")
_ENCRYPTION = {
    _guid("2211b3fb-bd23-11d2-b4b7-00a0c955fc6e"),  # Content Encryption
    _guid("298ae614-2622-4c17-b935-dae07ee9289c"),  # Extended Content Encryption
    _guid("43058533-6981-49e6-9b74-ad12cb86d58c"),  # Advanced Content Encryption (PlayReady)
}
_WMA_TAGS = {0x160: "wmav1", 0x161: "wmav2"}
_RESERVOIR = 0x0002
# ffmpeg's WMA decoder refuses more than 2 channels or a rate above 50 kHz (``ff_wma_init``).
_MAX_RATE = 50_000
_MAX_CHANNELS = 2
_MAX_BLOCK = 16_384
_MAX_OBJECTS = 1024
_MAX_PACKET = 1 << 20
# Bytes of the standard error correction data that opens each packet: 0x82 (2 bytes of it follow), 0, 0.
_ECC = 0x82
# ffmpeg skips the rest of a packet when fewer bytes than this are left in it (``FRAME_HEADER_SIZE``).
_FRAME_HEADER_SIZE = 6
# Bytes of a length field by its 2-bit length type (absent, BYTE, WORD, DWORD).
_WIDTHS = np.asarray([0, 1, 2, 4], dtype=np.int64)
_MASKS = np.asarray([0, 0xFF, 0xFFFF, 0xFFFFFFFF], dtype=np.int64)


@dataclass(frozen=True)
class _Layout:
    """What the header says about the audio stream and where its packets are."""

    codec: str
    sample_rate: int
    channels: int
    block_align: int
    reservoir: bool
    stream: int
    packet_size: int
    data_offset: int
    data_end: int  # where packets stop starting: the Data object's end, or the file's end (broadcast, no size)

    @property
    def frame_len(self) -> int:
        # ``ff_wma_get_frame_len_bits`` for versions 1 and 2.
        if self.sample_rate <= 16_000:
            return 512
        if self.sample_rate <= 22_050 or (self.sample_rate <= 32_000 and self.codec == "wmav1"):
            return 1024
        return 2048


def identify_asf(data: mmap.mmap) -> Identified | None:
    """An ASF file with one WMA v1/v2 stream, no bit reservoir, whose packets the walk reads; else ``None``."""
    layout = _layout(data)
    if layout is None or layout.reservoir:
        return None
    first = data[layout.data_offset : layout.data_offset + 3]
    if first and first != b"\x82\x00\x00"[: len(first)]:
        return None  # packets without the standard error correction bytes: not walked
    return Identified("asf", layout.codec, layout.sample_rate, layout.channels)


def asf_length(data: mmap.mmap, codec: str, sample_rate: int, *, numpy_only: bool = False) -> AudioLength | None:
    layout = _layout(data)
    if layout is None or layout.reservoir or layout.codec != codec or layout.sample_rate != sample_rate:
        return None
    blocks = _blocks(data, layout, numpy_only=numpy_only)
    if blocks is None:
        return None
    return AudioLength(max(0, blocks - 1) * layout.frame_len, sample_rate)


def _layout(data: mmap.mmap) -> _Layout | None:
    """The header's objects read as ffmpeg reads them, up to the Data object; ``None`` unless they describe exactly
    one stream, a WMA v1/v2 one, unscrambled and unencrypted, in fixed-size packets."""
    size = len(data)
    if size < 30 or data[:16] != _HEADER:
        return None
    position = 30
    packet_size = broadcast = None
    streams: list[tuple[int, int, bytes, int]] = []  # (object start, body start, body end, type-specific size)
    for _ in range(_MAX_OBJECTS):
        if position + 24 > size:
            return None
        kind = data[position : position + 16]
        length = struct.unpack_from("<Q", data, position + 16)[0]
        body = position + 24
        if kind == _DATA:
            break
        if length < 24 or position + length > size:
            return None
        if kind in _ENCRYPTION:
            return None
        if kind == _FILE_PROPERTIES:
            if length < 24 + 80:
                return None
            flags, least, most = struct.unpack_from("<III", data, body + 64)
            if least >= 1 << 29:
                return None
            packet_size, broadcast = (most if least == most else None), bool(flags & 1)
        elif kind == _STREAM_PROPERTIES:
            streams.append((position, body, data[body : body + 16], length))
        elif kind == _HEADER_EXTENSION:
            position = body + 22  # its objects are read as if they stood in the header
            continue
        elif kind == _EXTENDED_STREAM_PROPERTIES:
            following = _after_extended_stream_properties(data, body, position + length)
            if following is None:
                return None
            position = following  # an embedded Stream Properties object may follow its fixed part
            continue
        position += length
    else:
        return None
    if packet_size is None or broadcast is None or not 0 < packet_size <= _MAX_PACKET or len(streams) != 1:
        return None
    data_length = struct.unpack_from("<Q", data, position + 16)[0]
    data_offset = position + 50
    data_end = size if broadcast or data_length < 100 else min(size, position + data_length)
    return _audio_stream(data, streams[0], packet_size=packet_size, data_offset=data_offset, data_end=data_end)


def _after_extended_stream_properties(data: mmap.mmap, body: int, end: int) -> int | None:
    """Where ffmpeg reads on after an Extended Stream Properties object's fixed part, names and payload extensions."""
    at = body + 64
    if at > end:
        return None
    names, extensions = struct.unpack_from("<HH", data, at - 4)
    for _ in range(names):
        if at + 4 > end:
            return None
        at += 4 + struct.unpack_from("<H", data, at + 2)[0]
    for _ in range(extensions):
        if at + 22 > end:
            return None
        at += 22 + struct.unpack_from("<I", data, at + 18)[0]
    return at if at <= end else None


def _audio_stream(
    data: mmap.mmap, stream: tuple[int, int, bytes, int], *, packet_size: int, data_offset: int, data_end: int
) -> _Layout | None:
    start, body, kind, length = stream
    if kind != _AUDIO_MEDIA or length < 24 + 54 + 18:
        return None
    specific = struct.unpack_from("<I", data, body + 40)[0]
    number = struct.unpack_from("<H", data, body + 48)[0] & 0x7F
    wave = body + 54
    if specific < 18 or wave + specific > start + length:
        return None
    tag, channels, rate, byte_rate, block_align, _bits, extra = struct.unpack_from("<HHIIHHH", data, wave)
    codec = _WMA_TAGS.get(tag)
    if codec is None or not 1 <= channels <= _MAX_CHANNELS or not 0 < rate <= _MAX_RATE or byte_rate <= 0:
        return None
    if not 0 < block_align <= _MAX_BLOCK or number == 0:
        return None
    extra = min(extra, specific - 18)
    flags_at = 2 if codec == "wmav1" else 4
    flags = struct.unpack_from("<H", data, wave + 18 + flags_at)[0] if extra >= flags_at + 2 else 0
    spread = wave + specific
    if spread + 8 <= start + length and data[spread] > 1:
        return None  # scrambled audio (span > 1): ffmpeg descrambles whole objects; not followed here
    return _Layout(
        codec=codec,
        sample_rate=rate,
        channels=channels,
        block_align=block_align,
        reservoir=bool(flags & _RESERVOIR),
        stream=number,
        packet_size=packet_size,
        data_offset=data_offset,
        data_end=data_end,
    )


def _blocks(data: mmap.mmap, layout: _Layout, *, numpy_only: bool = False) -> int | None:
    """The audio blocks ffmpeg's demuxer delivers whole from the packets present; ``None`` when a packet or a fragment
    does not parse cleanly (ffmpeg would resynchronise or misread it: ffprobe's to count). The packets are parsed in C
    (``walkers.c``) where the library is built, else with numpy (``numpy_only``: the tests hold the two to each
    other)."""
    size = len(data)
    packet = layout.packet_size
    limit = min(size, layout.data_end)
    if layout.data_offset >= limit:
        return 0
    walkers = None if numpy_only else compiled.compiled_walkers()
    if walkers is not None:
        mapped = compiled.Mapped(data)
        return walkers.asf_blocks(
            mapped,
            first=layout.data_offset,
            limit=limit,
            packet=packet,
            stream=layout.stream,
            block_align=layout.block_align,
        )
    starts: Offsets = np.arange(layout.data_offset, limit, packet, dtype=np.int64)
    read = _Reader(data)
    head = read.dword(starts)  # the error correction flags and its two bytes, the packet's length type flags
    flags = read.byte(starts + 3)
    property_flags = read.byte(starts + 4)
    at = starts + 5
    stated_length = read.field(at, _MASKS[(flags >> 5) & 3])
    at += _WIDTHS[(flags >> 5) & 3] + _WIDTHS[(flags >> 1) & 3]
    padding = read.field(at, _MASKS[(flags >> 3) & 3])
    at += _WIDTHS[(flags >> 3) & 3] + 6  # send time, duration
    multiple = (flags & 1).astype(bool)
    segment_types = np.where(multiple, read.byte(at), 0x80)
    at += multiple
    # A packet whose header the file cuts off is not read (ffmpeg's demuxer stops at the end of the file).
    whole = at <= size
    if not whole.all():
        kept = int(np.flatnonzero(~whole)[0])
        starts, head, flags, property_flags = starts[:kept], head[:kept], flags[:kept], property_flags[:kept]
        stated_length, padding, multiple, segment_types, at = (
            stated_length[:kept],
            padding[:kept],
            multiple[:kept],
            segment_types[:kept],
            at[:kept],
        )
    if not starts.size:
        return 0
    if ((head & 0xFFFFFF) != _ECC).any():
        return None  # not the standard error correction bytes at a packet's start: junk, a shifted packet
    header = at - starts
    explicit = _WIDTHS[(flags >> 5) & 3] > 0
    if (explicit & (stated_length != packet)).any() or (padding >= packet).any() or (header > packet - padding).any():
        return None  # a packet whose length is not the file's packet size, or whose padding swallows it
    packets = _Packets(
        at=at,
        left=packet - padding - header,
        padding=padding,
        segments=np.where(multiple, segment_types & 0x3F, 1),
        multiple=multiple,
        size_kind=(segment_types >> 6) & 3,
        property_flags=property_flags,
    )
    fragments = _fragments(read, layout.stream, packets, size)
    if fragments is None:
        return None
    return _delivered_blocks(*fragments, layout.block_align)


@dataclass
class _Packets:
    """Per packet: where its next payload header is, the bytes left for payloads, its padding, payloads left, and the
    flags that size its payload headers' fields."""

    at: Offsets
    left: Offsets
    padding: Offsets
    segments: Offsets
    multiple: npt.NDArray[np.bool_]
    size_kind: Offsets
    property_flags: Offsets


class _Reader:
    """Little-endian fields at any offsets, one gather each: the file seen as a 32-bit word starting at every byte (an
    unaligned view, no copy). The last three offsets, whose words would run past the end, read from a copy padded
    with zeros; an offset past the end reads as if at the end (its payload or packet is then cut, and what it reads is
    not used)."""

    def __init__(self, data: mmap.mmap) -> None:
        self._size = size = len(data)
        self._bytes = np.frombuffer(data, dtype=np.uint8)
        self._words = np.ndarray((max(0, size - 3),), dtype="<u4", buffer=data, strides=(1,))
        tail = bytes(data[max(0, size - 3) :]).ljust(8, b"\0")
        self._tail = np.ndarray((4,), dtype="<u4", buffer=tail, strides=(1,))

    def dword(self, at: Offsets) -> Offsets:
        words = self._words
        # Indexing, not ``take``: ``take`` would first copy the whole unaligned view.
        value = words[np.minimum(at, words.size - 1)] if words.size else np.zeros(at.size, dtype=np.uint32)
        late = np.flatnonzero(at >= words.size)
        if late.size:
            value[late] = self._tail.take(np.minimum(at[late], self._size) - words.size, mode="clip")
        result: Offsets = value.astype(np.int64)
        return result

    def field(self, at: Offsets, masks: Offsets | int) -> Offsets:
        """The fields at ``at`` of the widths ``masks`` select (``_MASKS``: 0 for an absent field)."""
        value: Offsets = self.dword(at) & masks
        return value

    def byte(self, at: Offsets) -> Offsets:
        value: Offsets = self._bytes.take(at, mode="clip").astype(np.int64)
        return value


def _fragments(
    read: _Reader, stream: int, packets: _Packets, size: int
) -> tuple[Offsets, Offsets, Offsets, Offsets] | None:
    """The audio stream's fragments in file order: (offset in its object, bytes present, bytes stated, object size);
    ``None`` on a payload header ffmpeg would refuse or misread.

    All packets step one payload at a time together; a packet with no payload left at a step only idles.
    """
    at, left, padding, remaining = packets.at, packets.left, packets.padding, packets.segments
    flags = packets.property_flags
    # Where each field sits in a payload header: stream number (1 byte), media object number, offset in the object,
    # replicated data length (each 0-4 bytes by the packet's property flags), replicated data (the object's size
    # first), then the payload length (multiple payloads only).
    offset_at = 1 + _WIDTHS[(flags >> 4) & 3]
    replicated_at = offset_at + _WIDTHS[(flags >> 2) & 3]
    replicated_end = replicated_at + _WIDTHS[flags & 3]
    offset_mask, replicated_mask = _MASKS[(flags >> 2) & 3], _MASKS[flags & 3]
    size_mask = np.where(packets.multiple, _MASKS[packets.size_kind], 0)
    size_width = np.where(packets.multiple, _WIDTHS[packets.size_kind], 0)
    single = ~packets.multiple
    alive = np.ones(at.size, dtype=bool)  # past a payload header the file cuts, nothing more is read
    steps: list[tuple[npt.NDArray[np.bool_], Offsets, Offsets, Offsets, Offsets]] = []
    for _ in range(int(remaining.max(initial=0))):
        active = alive & (remaining > 0) & (left >= _FRAME_HEADER_SIZE)
        if not active.any():
            break
        number = read.byte(at) & 0x7F
        offset = read.field(at + offset_at, offset_mask)
        replicated = read.field(at + replicated_at, replicated_mask)
        object_size = read.dword(at + replicated_end)
        cursor = at + replicated_end + replicated + (replicated == 1)
        stated = read.field(cursor, size_mask)
        cursor += size_width
        head = cursor - at
        room = left - head
        stated = np.where(single, room, stated)
        # A header the file cuts (its packet ends past the file too): nothing more is read. One that runs past its
        # packet is refused below, wherever the file ends.
        cut = active & (cursor > size) & (room >= 0)
        if cut.any():
            active &= ~cut
            alive &= ~cut
        audio = number == stream
        over = np.maximum(stated - room, 0)
        refused = (room < 0) | (over > padding) | ((replicated < 8) & (audio | (replicated > 1)))
        refused |= (replicated >= 8) & (object_size >= 1 << 24)
        if (active & refused).any():
            return None  # a payload ffmpeg refuses; or compressed, or without its object's size: not followed here
        audio &= active
        # A last payload longer than its room takes the difference from the packet's padding, as ffmpeg does.
        padding = np.where(active, padding - over, padding)
        left = np.where(active, left + over - head - stated, left)
        at = np.where(active, cursor + stated, at)
        remaining = remaining - active
        steps.append((audio, offset, np.clip(size - cursor, 0, stated), stated, object_size))
    if not steps:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty
    # Packet by packet, payload by payload (the file's order): the audio payloads' places in the steps' arrays.
    count = len(steps)
    places = np.flatnonzero(np.stack([step[0] for step in steps], axis=1).ravel())
    places = (places % count) * at.size + places // count
    offsets, present, stated, objects = (
        np.concatenate([step[part] for step in steps]).take(places) for part in range(1, 5)
    )
    return offsets, present, stated, objects


def _delivered_blocks(
    offsets: Offsets, present: Offsets, stated: Offsets, objects: Offsets, block_align: int
) -> int | None:
    """Blocks of the objects ffmpeg's demuxer completes from these fragments (and of the object a cut ends early);
    ``None`` when fragments do not follow one another as a muxer writes them."""
    if not offsets.size:
        return 0
    ends = offsets + stated
    if (stated <= 0).any() or (objects <= 0).any() or (ends > objects).any():
        return None
    first = offsets == 0
    previous_end = np.concatenate(([0], ends[:-1]))
    previous_object = np.concatenate(([0], objects[:-1]))
    previous_whole = np.concatenate(([True], ends[:-1] == objects[:-1]))
    continues = ~first & (offsets == previous_end) & (objects == previous_object) & ~previous_whole
    # Each fragment starts an object after a whole one, or continues the one before it; nothing else is followed.
    if not (np.where(first, previous_whole, continues)).all():
        return None
    whole = (ends == objects) & (present == stated)
    blocks = int((objects[whole] // block_align).sum())
    short = present < stated
    if short.any():
        last = int(np.flatnonzero(short)[0])
        if last != offsets.size - 1:
            return None
        delivered = int(offsets[last] + present[last])
        blocks += delivered // block_align
    return blocks
