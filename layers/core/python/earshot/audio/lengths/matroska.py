"""Matroska/WebM with Opus, Vorbis, ALAC or WavPack: every complete block's own length, summed.

The segment's Duration element and the block timecodes are headers; the samples come from the blocks (an
Opus packet's TOC byte, a Vorbis packet's mode, an ALAC frame's header against the cookie's frame length, a
WavPack block's sample count checked against the stream's block size, ``earshot.audio.lengths.wavpack``).
``CodecDelay`` (the Opus pre-skip) and the last block's ``DiscardPadding`` are trimmed as decoders trim them, each
at most one packet. Clusters of unknown size
(a browser's MediaRecorder writes them) end where the next top-level element begins.
"""

from __future__ import annotations

import mmap
import struct

import numpy as np
import numpy.typing as npt

from earshot.audio.lengths import compiled
from earshot.audio.lengths.codecs import (
    OPUS_MAX_PACKET,
    OPUS_RATE,
    alac_frame_length,
    alac_frame_samples,
    opus_packet_samples,
    vorbis_modes,
    vorbis_packet_samples,
)
from earshot.audio.lengths.common import AudioLength, Identified
from earshot.audio.lengths.matroska_runs import OpusBlockRuns
from earshot.audio.lengths.wavpack import WAVPACK_RATES, wavpack_samples

_EBML, _SEGMENT, _CLUSTER, _TRACKS, _TRACK_ENTRY = 0x1A45DFA3, 0x18538067, 0x1F43B675, 0x1654AE6B, 0xAE
_TRACK_NUMBER, _TRACK_TYPE, _CODEC_ID, _CODEC_PRIVATE, _CODEC_DELAY = 0xD7, 0x83, 0x86, 0x63A2, 0x56AA
_SIMPLE_BLOCK, _BLOCK_GROUP, _BLOCK, _DISCARD_PADDING = 0xA3, 0xA0, 0xA1, 0x75A2
# Elements that end a cluster of unknown size (the segment's other children).
_TOP_LEVEL = frozenset({_CLUSTER, 0x1C53BB6B, 0x1254C367, 0x1941A469, 0x1043A770, 0x114D9B74, 0x1549A966, _TRACKS})
_AUDIO_TRACK = 2
_NANOSECONDS = 1_000_000_000
# From this many bytes of clusters on, Opus blocks are found in one vectorised scan and jumped along in runs.
_RUNS_MIN_BYTES = 64 * 1024


def _element(data: mmap.mmap, position: int) -> tuple[int, int | None, int] | None:
    """(id, size or None when unknown, offset of the body) of the element at ``position``."""
    end = len(data)
    if position >= end:
        return None
    lead = data[position]
    width = 1 if lead & 0x80 else 2 if lead & 0x40 else 3 if lead & 0x20 else 4 if lead & 0x10 else 0
    if not width or position + width >= end:
        return None
    ident = int.from_bytes(data[position : position + width], "big")
    size = _vint(data, position + width, end)
    if size is None:
        return None
    value, after, unknown = size
    return ident, (None if unknown else value), after


def _vint(data: mmap.mmap, position: int, end: int) -> tuple[int, int, bool] | None:
    """The EBML variable-size integer at ``position`` (read no further than ``end``): its value, the offset after it,
    and whether all its value bits are ones (an element size of that form means "unknown")."""
    if position >= end:
        return None
    lead = data[position]
    width, mask = 1, 0x80
    while width <= 8 and not lead & mask:
        width += 1
        mask >>= 1
    if width > 8 or position + width > end:
        return None
    value = lead & (mask - 1)
    ones = value == mask - 1
    for byte in data[position + 1 : position + width]:
        value = (value << 8) | byte
        ones = ones and byte == 0xFF
    return value, position + width, ones


def _children(data: mmap.mmap, start: int, end: int) -> list[tuple[int, int, int]]:
    """(id, body offset, body end) of the elements between ``start`` and ``end`` (known sizes only)."""
    found = []
    position = start
    while position < end:
        element = _element(data, position)
        if element is None:
            break
        ident, size, body = element
        if size is None:
            break
        found.append((ident, body, body + size))
        position = body + size
    return found


class _Track:
    def __init__(self) -> None:
        self.number = 0
        self.kind = 0
        self.codec = ""
        self.private = b""
        self.delay_ns = 0


def _audio_track(data: mmap.mmap, start: int, end: int) -> _Track | None:
    for ident, body, body_end in _children(data, start, end):
        if ident != _TRACK_ENTRY:
            continue
        track = _Track()
        for child, child_body, child_end in _children(data, body, body_end):
            value = bytes(data[child_body:child_end])
            if child == _TRACK_NUMBER:
                track.number = int.from_bytes(value, "big")
            elif child == _TRACK_TYPE:
                track.kind = int.from_bytes(value, "big")
            elif child == _CODEC_ID:
                track.codec = value.rstrip(b"\0").decode("ascii", "replace")
            elif child == _CODEC_PRIVATE:
                track.private = value
            elif child == _CODEC_DELAY:
                track.delay_ns = int.from_bytes(value, "big")
        if track.kind == _AUDIO_TRACK:
            return track
    return None


def _xiph_headers(private: bytes) -> list[bytes] | None:
    """The three Vorbis headers packed in CodecPrivate with Xiph lacing."""
    if not private or private[0] != 2:
        return None
    position, sizes = 1, []
    for _ in range(2):
        size = 0
        while position < len(private) and private[position] == 255:
            size += 255
            position += 1
        if position >= len(private):
            return None
        size += private[position]
        position += 1
        sizes.append(size)
    first = private[position : position + sizes[0]]
    second = private[position + sizes[0] : position + sizes[0] + sizes[1]]
    third = private[position + sizes[0] + sizes[1] :]
    return [first, second, third]


def matroska_length(data: mmap.mmap, codec: str, sample_rate: int) -> AudioLength | None:
    if codec not in ("opus", "vorbis", "alac", "wavpack"):
        return None
    # Bytes read from the start of each block's frame: the TOC/mode byte (Opus, Vorbis), the frame header (ALAC),
    # the block's sample count and flags (WavPack).
    head_width = 2 if codec in ("opus", "vorbis") else 8
    header = _element(data, 0)
    if header is None or header[0] != _EBML or header[1] is None:
        return None
    segment = _element(data, header[2] + header[1])
    if segment is None or segment[0] != _SEGMENT:
        return None
    size = len(data)
    segment_end = size if segment[1] is None else min(size, segment[2] + segment[1])
    track: _Track | None = None
    # Where each frame of the track's blocks starts and where its block ends: their first ``head_width`` bytes are
    # gathered at once at the end (``_heads``), not sliced block by block.
    frame_starts: list[int] = []
    frame_ends: list[int] = []
    discard_ns = 0
    runs: OpusBlockRuns | None = None
    # The compiled walk takes the Opus SimpleBlocks (the fast path's and laced ones, by _laced_frames' rules), or the
    # fast-form ALAC ones, and the elements between them, itself (``walkers.c``); for Opus the numpy runs stand in
    # without it.
    walkers = compiled.compiled_walkers() if codec in ("opus", "alac") else None
    mapped = compiled.Mapped(data) if walkers is not None else None
    jumped = jumped_samples = last_jumped = 0  # blocks taken in runs or compiled, their samples, the last one's
    alac_length = 0  # the ALAC track's frame length (samples per frame), as its cookie states it
    position = segment[2]
    while position < segment_end:
        element = _element(data, position)
        if element is None:
            break
        ident, length, body = element
        if ident == _TRACKS and length is not None:
            track = _audio_track(data, body, min(size, body + length))
            if track is None:
                return None
            if codec == "alac":
                stated = alac_frame_length(track.private) if track.codec.startswith("A_ALAC") else None
                if stated is None:
                    return None
                alac_length = stated
        if ident != _CLUSTER:
            if length is None:
                return None  # only clusters may have an unknown size here
            position = body + length
            continue
        if track is None:
            return None
        # Walk the cluster's blocks.
        cluster_end = segment_end if length is None else min(segment_end, body + length)
        position = body
        number = track.number
        track_byte = 0x80 | number if number < 0x7F else -1
        if (
            runs is None
            and walkers is None
            and codec == "opus"
            and track_byte >= 0
            and size - position >= _RUNS_MIN_BYTES
        ):
            runs = OpusBlockRuns(data, position, track_byte)
        while position < cluster_end:
            if walkers is not None and mapped is not None:
                walked = walkers.matroska_blocks(
                    mapped,
                    position=position,
                    cluster_end=cluster_end,
                    unknown_size=length is None,
                    segment_end=segment_end,
                    track_byte=track_byte,
                    alac_frame_length=alac_length,
                )
                if walked.blocks:  # the blocks the paths below would take one by one
                    jumped += walked.blocks
                    jumped_samples += walked.samples
                    last_jumped = walked.last_samples
                    discard_ns = 0
                # It may have walked on into later clusters: this loop goes on in the one it stopped in.
                position, cluster_end = walked.position, walked.cluster_end
                length = None if walked.unknown_size else cluster_end - position
                if walked.cluster_done:
                    break
                if position >= cluster_end:
                    continue
            if runs is not None and data[position] == _SIMPLE_BLOCK:
                jump = runs.jump(position, cluster_end)
                if jump is not None:  # the blocks the fast path below would take one by one
                    jumped += jump.blocks
                    jumped_samples += jump.samples
                    last_jumped = jump.last_samples
                    discard_ns = 0
                    position = jump.position
                    continue
            # Fast path: SimpleBlocks with a 1- or 2-byte size, of our track, unlaced (nearly every block).
            if data[position] == _SIMPLE_BLOCK:
                after = _fast_blocks(data, position, cluster_end, track_byte, frame_starts, frame_ends)
                if after != position:
                    last_jumped = -1
                    discard_ns = 0
                    position = after
                    continue
            child = _element(data, position)
            if child is None:
                position = size
                break
            child_id, child_size, child_body = child
            if child_size is None:
                if child_id in _TOP_LEVEL:
                    break  # the next cluster (or cues...) ends an unknown-size cluster
                return None
            child_end = child_body + child_size
            if child_id in _TOP_LEVEL and length is None:
                break
            if child_end > size:
                position = size  # a block cut short: it does not decode
                break
            if child_id in (_SIMPLE_BLOCK, _BLOCK_GROUP):
                block_body, block_end, padding = child_body, child_end, 0
                if child_id == _BLOCK_GROUP:
                    block_body = -1
                    for inner, inner_body, inner_end in _children(data, child_body, child_end):
                        if inner == _BLOCK:
                            block_body, block_end = inner_body, inner_end
                        elif inner == _DISCARD_PADDING:
                            padding = int.from_bytes(data[inner_body:inner_end], "big", signed=True)
                    if block_body < 0:
                        position = child_end
                        continue
                lead = data[block_body]
                if lead == 0x80 | number:
                    frame = block_body + 4
                else:
                    track_number = _element_number(data, block_body)
                    if track_number is None or track_number[0] != number:
                        position = child_end
                        continue
                    frame = track_number[1] + 3
                if frame > block_end:
                    return None
                lacing = data[frame - 1] & 0x06
                frames = _laced_frames(data, frame, block_end, lacing) if lacing else [frame]
                if frames is None:
                    return None  # a lace that does not add up: leave the file to the packet counter
                frame_starts += frames
                frame_ends += [block_end] * len(frames)
                last_jumped = -1
                discard_ns = padding
            position = child_end
        if length is not None:
            position = max(position, cluster_end)
    if track is None:
        return None
    pairs = _heads(data, frame_starts, frame_ends, head_width)
    if codec == "alac":
        return AudioLength(int(alac_frame_samples(pairs, alac_length).sum()) + jumped_samples, sample_rate)
    if codec == "wavpack":
        if not track.codec.startswith("A_WAVPACK4"):
            return None
        counts = pairs[:, :4].copy().view("<u4").reshape(-1).astype(np.int64)
        flags = pairs[:, 4:8].copy().view("<u4").reshape(-1).astype(np.int64)
        named = (flags >> 23) & 0xF
        named = named[named < len(WAVPACK_RATES)]
        if (flags >> 31).any() or (np.asarray(WAVPACK_RATES)[named] != sample_rate).any():
            return None  # DSD, or blocks whose own rate is not the track's: ffprobe decides
        return AudioLength(wavpack_samples(counts), sample_rate)
    if codec == "opus":
        if not track.codec.startswith("A_OPUS"):
            return None
        samples = opus_packet_samples(pairs[:, 0].copy(), pairs[:, 1].copy())
        total = int(samples.sum()) + jumped_samples
        last = last_jumped if last_jumped >= 0 and jumped else int(samples[-1]) if samples.size else 0
        delay = min(round(track.delay_ns * OPUS_RATE / _NANOSECONDS), 65535)
        trim = round(discard_ns * OPUS_RATE / _NANOSECONDS) if samples.size or jumped else 0
        if 0 < trim <= min(OPUS_MAX_PACKET, last):
            total -= trim
        played = max(0, total - delay)
        return AudioLength(played * sample_rate // OPUS_RATE, sample_rate)
    headers = _xiph_headers(track.private)
    modes = vorbis_modes(headers[0], headers[2]) if headers else None
    if modes is None:
        return None
    total = int(vorbis_packet_samples(modes, pairs[:, 0].copy()).sum())
    trim = round(discard_ns * sample_rate / _NANOSECONDS)
    if 0 < trim < modes.long_block:
        total -= trim
    return AudioLength(total, sample_rate)


def _fast_blocks(
    data: mmap.mmap, position: int, limit: int, track_byte: int, starts: list[int], ends: list[int]
) -> int:
    """Take the SimpleBlocks from ``position`` on, while each is in the fast form (a 1- or 2-byte size that is not
    "unknown", the track's 1-byte number, no lacing, a frame after its 4-byte head) and starts before ``limit``:
    append each one's frame start and end, and return where the first block not taken starts."""
    size = len(data)
    while position < limit and position + 3 < size and data[position] == _SIMPLE_BLOCK:
        lead = data[position + 1]
        if lead >= 0x80:
            if lead == 0xFF:  # unknown size
                break
            body = position + 2
            end = body + (lead & 0x7F)
        elif lead >= 0x40 and not (lead == 0x7F and data[position + 2] == 0xFF):
            body = position + 3
            end = body + (((lead & 0x3F) << 8) | data[position + 2])
        else:
            break
        if end > size or end - body <= 4 or data[body] != track_byte or data[body + 3] & 0x06:
            break
        starts.append(body + 4)
        ends.append(end)
        position = end
    return position


def _heads(data: mmap.mmap, starts: list[int], ends: list[int], width: int) -> npt.NDArray[np.uint8]:
    """The first ``width`` bytes of each frame (one row per frame), zero past the end of its block."""
    at = np.asarray(starts, dtype=np.int64).reshape(-1, 1) + np.arange(width, dtype=np.int64)
    inside = at < np.asarray(ends, dtype=np.int64).reshape(-1, 1)
    heads: npt.NDArray[np.uint8] = np.where(inside, np.frombuffer(data, dtype=np.uint8)[np.where(inside, at, 0)], 0)
    return heads.astype(np.uint8)


_XIPH_LACING, _FIXED_LACING, _EBML_LACING = 0x02, 0x04, 0x06


def _laced_frames(data: mmap.mmap, start: int, end: int, lacing: int) -> list[int] | None:
    """Where each frame of a laced block starts (muxers such as mkvmerge lace Opus and Vorbis packets), or None
    when the lace's sizes do not add up to the block's bytes. ``start`` is the lace header (frame count - 1)."""
    if start >= end:
        return None
    count = data[start] + 1
    position = start + 1
    sizes: list[int] = []
    if lacing == _XIPH_LACING:
        for _ in range(count - 1):
            size = 0
            while True:
                if position >= end:
                    return None
                byte = data[position]
                position += 1
                size += byte
                if byte != 0xFF:
                    break
            sizes.append(size)
    elif lacing == _EBML_LACING:
        for index in range(count - 1):
            coded = _vint(data, position, end)
            if coded is None:
                return None
            value, after, _ = coded
            width, position = after - position, after
            # The first size is unsigned, each next one a signed difference from the one before.
            size = value if index == 0 else sizes[-1] + value - ((1 << (7 * width - 1)) - 1)
            if size < 0:
                return None
            sizes.append(size)
    elif lacing == _FIXED_LACING:
        if (end - position) % count:
            return None
        sizes = [(end - position) // count] * (count - 1)
    last = end - position - sum(sizes)
    if last <= 0 or any(size <= 0 for size in sizes):
        return None
    starts = []
    for size in [*sizes, last]:
        starts.append(position)
        position += size
    return starts


def _element_number(data: mmap.mmap, position: int) -> tuple[int, int] | None:
    """A block's track number (an EBML variable-size integer) and the offset after it."""
    coded = _vint(data, position, len(data))
    return None if coded is None else (coded[0], coded[1])


MATROSKA_FORMAT_NAME = "matroska,webm"
_EBML_READ_VERSION, _DOC_TYPE, _DOC_TYPE_READ_VERSION = 0x42F7, 0x4282, 0x4285
_EBML_HEADER_CHILDREN = frozenset(
    {0x4286, _EBML_READ_VERSION, 0x42F2, 0x42F3, _DOC_TYPE, 0x4287, _DOC_TYPE_READ_VERSION}
)
_VOID, _CRC32, _AUDIO, _SAMPLING_FREQUENCY, _CHANNELS = 0xEC, 0xBF, 0xE1, 0xB5, 0x9F
# What identify_matroska accepts before the first cluster, and inside the track entry: anything else (attachments,
# a video or second track, content encodings that rewrite the blocks' bytes, track operations) is for ffprobe.
_HEAD_CHILDREN = frozenset({0x114D9B74, 0x1549A966, _TRACKS, 0x1C53BB6B, 0x1254C367, 0x1043A770, _VOID, _CRC32})
_TRACK_CHILDREN = frozenset(
    {_TRACK_NUMBER, 0x73C5, _TRACK_TYPE, 0xB9, 0x88, 0x55AA, 0x9C, 0x6DE7, 0x6DF8, 0x23E383, 0x23314F, 0x55EE}
    | {0x536E, 0x22B59C, 0x22B59D, _CODEC_ID, _CODEC_PRIVATE, 0x258688, _CODEC_DELAY, 0x56BB, _AUDIO, _VOID, _CRC32}
)
_AUDIO_CHILDREN = frozenset({_SAMPLING_FREQUENCY, 0x78B5, _CHANNELS, 0x6264})
_MAX_CHANNELS = 8


def identify_matroska(data: mmap.mmap) -> Identified | None:
    """A Matroska/WebM file of one Opus or Vorbis track, named as ffprobe names it; anything else ``None``.

    Accepted only when the EBML header is Matroska's or WebM's (read versions 1 and at most 4), the segment holds
    nothing before its first cluster but a seek head, info, one ``Tracks`` of exactly one audio track, cues, tags,
    chapters and padding, and that track (no content encodings) carries an ``OpusHead`` or the three Vorbis
    headers whose rate and channels agree with its ``Audio`` element.
    """
    header = _element(data, 0)
    if header is None or header[0] != _EBML or header[1] is None:
        return None
    fields = {ident: bytes(data[body:end]) for ident, body, end in _children(data, header[2], header[2] + header[1])}
    if not fields.keys() <= _EBML_HEADER_CHILDREN | {_VOID, _CRC32}:
        return None
    if fields.get(_DOC_TYPE, b"").rstrip(b"\0") not in (b"webm", b"matroska"):
        return None
    if int.from_bytes(fields.get(_EBML_READ_VERSION, b"\x01"), "big") != 1:
        return None
    if not 1 <= int.from_bytes(fields.get(_DOC_TYPE_READ_VERSION, b"\x01"), "big") <= 4:
        return None
    segment = _element(data, header[2] + header[1])
    if segment is None or segment[0] != _SEGMENT:
        return None
    end = len(data) if segment[1] is None else min(len(data), segment[2] + segment[1])
    position, tracks = segment[2], []
    while position < end:
        element = _element(data, position)
        if element is None or element[0] == _CLUSTER:
            break
        ident, size, body = element
        if size is None or ident not in _HEAD_CHILDREN or body + size > len(data):
            return None
        if ident == _TRACKS:
            tracks.append((body, body + size))
        position = body + size
    if len(tracks) != 1:
        return None
    children = _children(data, *tracks[0])
    entries = [child for child in children if child[0] not in (_VOID, _CRC32)]
    if not children or children[-1][2] != tracks[0][1] or len(entries) != 1 or entries[0][0] != _TRACK_ENTRY:
        return None
    return _identified_track(data, entries[0][1], entries[0][2])


def _identified_track(data: mmap.mmap, start: int, end: int) -> Identified | None:
    children = _children(data, start, end)
    if not children or children[-1][2] != end or any(ident not in _TRACK_CHILDREN for ident, _, _ in children):
        return None
    fields = {ident: bytes(data[body:child_end]) for ident, body, child_end in children}
    if len(fields) != len(children) or int.from_bytes(fields.get(_TRACK_TYPE, b""), "big") != _AUDIO_TRACK:
        return None
    if not 0 < int.from_bytes(fields.get(_TRACK_NUMBER, b""), "big") < 2**32:
        return None
    audio = next(((body, child_end) for ident, body, child_end in children if ident == _AUDIO), None)
    audio_fields = (
        {ident: bytes(data[body:child_end]) for ident, body, child_end in _children(data, *audio)} if audio else {}
    )
    if not audio_fields.keys() <= _AUDIO_CHILDREN:
        return None
    stated_channels = int.from_bytes(audio_fields.get(_CHANNELS, b""), "big") or None
    codec_id, private = fields.get(_CODEC_ID, b"").rstrip(b"\0"), fields.get(_CODEC_PRIVATE, b"")
    if codec_id == b"A_OPUS":
        if len(private) < 19 or not private.startswith(b"OpusHead") or private[8] & 0xF0 or private[18] not in (0, 1):
            return None
        codec, rate, channels = "opus", OPUS_RATE, private[9]  # Opus always decodes at 48 kHz
    elif codec_id == b"A_VORBIS":
        headers = _xiph_headers(private)
        first = headers[0] if headers else b""
        if len(first) < 30 or not first.startswith(b"\x01vorbis") or first[7:11] != b"\0\0\0\0" or not first[29] & 1:
            return None
        if vorbis_modes(first, headers[2] if headers else b"") is None:
            return None
        codec, rate, channels = "vorbis", int.from_bytes(first[12:16], "little"), first[11]
        if not _rate_agrees(audio_fields, rate):
            return None
    elif codec_id == b"A_ALAC":
        frame_length = alac_frame_length(private)
        cookie = private[12:] if len(private) >= 36 and private[4:8] == b"alac" else private
        if frame_length is None or len(cookie) != 24:
            return None
        codec, rate, channels = "alac", int.from_bytes(cookie[20:24], "big"), cookie[9]
        if not _rate_agrees(audio_fields, rate):
            return None
    elif codec_id == b"A_WAVPACK4":
        # The blocks carry no stream header in Matroska: rate and channels are the track's (each block's own rate
        # flag is checked against it by the walk).
        stated_rate = _ebml_float(audio_fields.get(_SAMPLING_FREQUENCY, b""))
        if stated_rate is None or stated_rate != int(stated_rate) or len(private) != 2:
            return None
        codec, rate, channels = "wavpack", int(stated_rate), stated_channels or 1
    else:
        return None
    if not 1 <= channels <= _MAX_CHANNELS or (stated_channels is not None and stated_channels != channels):
        return None
    if not 0 < rate <= 768_000:
        return None
    return Identified(MATROSKA_FORMAT_NAME, codec, rate, channels)


def _rate_agrees(audio_fields: dict[int, bytes], rate: int) -> bool:
    """Whether the track's ``SamplingFrequency``, when it states one, is the codec header's rate."""
    stated = audio_fields.get(_SAMPLING_FREQUENCY)
    return stated is None or _ebml_float(stated) == rate


def _ebml_float(value: bytes) -> float | None:
    if len(value) == 4:
        return float(struct.unpack(">f", value)[0])
    if len(value) == 8:
        return float(struct.unpack(">d", value)[0])
    return None
