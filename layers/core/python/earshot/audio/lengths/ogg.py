"""Ogg Opus and Ogg Vorbis: every complete packet's own length, summed; granule positions only trim.

A granule position is a header like any other (a 1-second file may claim ten hours at its last page). The
samples come from the packets: an Opus packet's TOC byte says how long it is, a Vorbis packet's mode says
its block size. The last granule may then shorten the sum by less than one packet (the encoder's end
padding, which decoders drop); when it is missing or disagrees by more, the last packet (whose padding is then
unknown) is not billed: exact to one packet, never above the audio. Opus's pre-skip is dropped too.
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
    opus_packet_samples,
    opus_pre_skip,
    vorbis_modes,
    vorbis_packet_samples,
)
from earshot.audio.lengths.common import AudioLength

_PAGE = struct.Struct("<4sBBqIII B")
_NO_GRANULE = -1


def ogg_length(data: mmap.mmap, codec: str, sample_rate: int) -> AudioLength | None:
    if codec not in ("opus", "vorbis") or data[:4] != b"OggS":
        return None
    packets = _packets(data)
    if packets is None:
        return None
    start_offsets, lengths, first, second, last_granule, granule_packets = packets
    if start_offsets.size < (2 if codec == "opus" else 3):
        return AudioLength(0, sample_rate)

    def packet(index: int) -> bytes:
        return bytes(data[int(start_offsets[index]) : int(start_offsets[index] + lengths[index])])

    if codec == "opus":
        pre_skip = opus_pre_skip(packet(0))
        if pre_skip is None:
            return None
        audio = slice(2, None)  # OpusHead, OpusTags
        samples = opus_packet_samples(first[audio], second[audio])
        samples[lengths[audio] == 0] = 0
        rate, max_trim, lead = OPUS_RATE, OPUS_MAX_PACKET, pre_skip
    else:
        modes = vorbis_modes(packet(0), packet(2))
        if modes is None:
            return None
        audio = slice(3, None)
        samples = vorbis_packet_samples(modes, first[audio])
        rate, max_trim, lead = sample_rate, modes.long_block, 0
    total = int(samples.sum())
    exact = True
    # The end padding, as the last granule position describes it (only when that page's packets were all counted).
    if last_granule != _NO_GRANULE and granule_packets == start_offsets.size:
        trim = total - last_granule
        if 0 <= trim < max_trim:
            total -= trim
        else:
            exact = False
    else:
        exact = False
    if not exact and samples.size:
        # No trustworthy end trimming (the last granule is missing, or says more or less than one packet's padding):
        # bill the packets before the last one whole, and of the last none, since how much of it is padding nobody
        # says. Exact to one packet, never above what plays: 60 s of Opus bills 59.99 s, not its 13 ms of padding.
        total -= int(samples[-1])
    played = max(0, total - lead)
    if rate != sample_rate:  # Opus always decodes at 48 kHz; bill at the rate ffprobe reports
        played = played * sample_rate // rate
    return AudioLength(played, sample_rate, exact=exact)


_Packets = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.uint8], npt.NDArray[np.uint8], int, int]


def _packets(data: mmap.mmap) -> _Packets | None:
    """The complete packets of the first logical stream that end in complete pages (a demuxer drops a page cut short
    whole): their offsets, lengths and first two bytes (0 where absent); the last complete page's granule position
    and how many packets had ended by that page. In C where the compiled walkers are built (``walkers.c``)."""
    walkers = compiled.compiled_walkers()
    if walkers is not None:
        found = walkers.ogg_packets(compiled.Mapped(data))
        if found is None:
            return None
        within = found.starts + found.lengths <= found.complete_end
        return (
            found.starts[within],
            found.lengths[within],
            found.first[within],
            found.second[within],
            found.last_granule,
            found.granule_packets,
        )
    pages = _pages(data)
    if pages is None:
        return None
    lacing, seg_offsets, last_granule, granule_packets, complete_end = pages
    ends = lacing < 255
    # A packet starts at the first segment and after each segment that ends one.
    starts = np.concatenate(([0], np.flatnonzero(ends[:-1]) + 1)) if lacing.size else np.zeros(0, np.int64)
    complete = np.flatnonzero(ends)  # the segment that ends each complete packet
    starts = starts[: complete.size]
    start_offsets = seg_offsets[starts]
    lengths = seg_offsets[complete] + lacing[complete] - start_offsets
    within = start_offsets + lengths <= complete_end
    start_offsets, lengths = start_offsets[within], lengths[within]
    buffer = np.frombuffer(data, dtype=np.uint8)
    first = np.where(lengths > 0, buffer[np.minimum(start_offsets, len(data) - 1)], 0).astype(np.uint8)
    second = np.where(lengths > 1, buffer[np.minimum(start_offsets + 1, len(data) - 1)], 0).astype(np.uint8)
    return start_offsets, lengths, first, second, last_granule, granule_packets


def _pages(
    data: mmap.mmap,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int, int, int] | None:
    """Lacing values and their byte offsets for the first logical stream, plus its last granule.

    Also returns the last complete page's granule position, how many packets had ended by that page, and
    where the last complete page ends.
    """
    size = len(data)
    tables: list[bytes] = []
    page_starts: list[int] = []
    page_counts: list[int] = []
    serial: int | None = None
    last_granule, granule_packets, packets_ended, complete_end = _NO_GRANULE, 0, 0, 0
    position = 0
    while position + 27 <= size:
        if data[position : position + 4] != b"OggS":
            found = data.find(b"OggS", position + 1)
            if found < 0:
                break
            position = found
            continue
        _, version, flags, granule, page_serial, _seq, _crc, count = _PAGE.unpack_from(data, position)
        table_end = position + 27 + count
        if version != 0 or table_end > size:
            break
        table = data[position + 27 : table_end]
        body = sum(table)
        if serial is None:
            serial = page_serial
        elif page_serial != serial:
            if flags & 0x02:  # another stream begins: chained or multiplexed; leave it to the packet counter
                return None
            position = table_end + body
            continue
        tables.append(table)
        page_starts.append(table_end)
        page_counts.append(count)
        packets_ended += count - table.count(255)
        if table_end + body <= size:
            complete_end = table_end + body
            if granule != _NO_GRANULE:
                last_granule, granule_packets = granule, packets_ended
        position = table_end + body
    if not tables:
        return None
    lacing = np.frombuffer(b"".join(tables), dtype=np.uint8).astype(np.int64)
    counts = np.asarray(page_counts, dtype=np.int64)
    cumulative = np.cumsum(lacing) - lacing  # bytes before each segment, across pages
    page_first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    base = np.asarray(page_starts, dtype=np.int64) - cumulative[np.minimum(page_first, max(0, lacing.size - 1))]
    offsets = cumulative + np.repeat(base, counts)
    return lacing, offsets, last_granule, granule_packets, complete_end
