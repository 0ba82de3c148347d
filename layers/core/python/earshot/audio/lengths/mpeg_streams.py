"""MPEG transport streams (.ts) and program streams (.mpeg/.mpg): the audio elementary stream's frames, walked.

Neither container states a length: ffprobe measures them by demuxing every packet, reading timestamps (PTS), which a
file may set to anything. Here the one audio stream's PES payloads are joined back into its elementary stream, and
that stream's frames are walked: ADTS AAC frames (1024 samples each: a frame stating several raw data
blocks still decodes to one in ffmpeg, so the field is not believed) by their own length fields with ffmpeg's resume
rule (``elementary.stream_samples``, the walk raw ``.aac`` files get), MPEG
audio frames (384/576/1152 samples) with the MPEG audio walker (``mpeg_audio._walk``). Only frames whose bytes are in
the file count, so a cut file bills what is left; timestamps are never read.

``identify_mpegts`` and ``identify_mpeg_ps`` name a file only when its structure is plain: a transport stream of
188-byte packets with one program whose PMT lists exactly one audio stream (AAC in ADTS, or MPEG audio) beside any
number of video streams and nothing else, unscrambled; a program stream of MPEG-1/2 packs holding one MPEG audio
stream beside any video streams (no private streams: AC-3, LPCM and DVD subtitles are ffprobe's). The first audio
frame gives codec, rate and channels. Anything else, or anything odd on the way (lost packet sync, a PES header that
does not parse), is left to ffprobe, which counts packets as before.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from earshot.audio.lengths import compiled, elementary
from earshot.audio.lengths.common import AudioLength, Identified
from earshot.audio.lengths.mpeg_audio import (
    _STREAM_MASK,
    _WORD,
    _compiled_frame_sizes,
    _find_stream,
    _frame_sizes,
    _Stream,
    _valid_header,
    _walk,
)

_Buffer = mmap.mmap | bytes
_TS_PACKET = 188
_TS_SYNC = 0x47
# How far into a stream the identification looks for its tables and its first audio frame.
_IDENTIFY_BYTES = 256 * 1024
# How far into a joined MPEG audio stream its first frame is looked for.
_FIRST_FRAME_WINDOW = 64 * 1024
_TS_AUDIO = {0x03: "mpeg", 0x04: "mpeg", 0x0F: "adts"}
_TS_VIDEO = {0x01, 0x02, 0x10, 0x1B, 0x24}
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
_AAC_FRAME = 1024
_ADTS_HEADER = 7
# ADTS fields that stay those of the first frame: ID, layer, profile, rate, channel configuration.
_ADTS_FIXED = 0xFFFEFDC0  # over the header's first four bytes, ignoring protection, private bit and originality
_PS_PACK, _PS_END, _PS_SYSTEM = 0xBA, 0xB9, 0xBB
_PS_SKIPPED = {0xBB, 0xBC, 0xBE, 0xBF}  # system header, stream map, padding, private stream 2 (navigation)


def identify_mpegts(data: mmap.mmap) -> Identified | None:
    layout = _ts_layout(data, min(len(data), _IDENTIFY_BYTES))
    if layout is None:
        return None
    pid, kind, has_video = layout
    es = _ts_elementary(data, pid, limit=min(len(data), _IDENTIFY_BYTES))
    first = _first_frame(es, kind) if es is not None else None
    if first is None:
        return None
    codec, rate, channels = first
    return Identified("mpegts", codec, rate, channels, has_video=has_video)


def mpegts_length(data: mmap.mmap, codec: str, sample_rate: int) -> AudioLength | None:
    layout = _ts_layout(data, min(len(data), _IDENTIFY_BYTES))
    if layout is None:
        return None
    pid, kind, _ = layout
    walkers = compiled.compiled_walkers()
    if walkers is not None:
        return _length(_ts_compiled(data, walkers, pid, kind), kind, codec, sample_rate)
    rows = _ts_rows(data, pid, limit=len(data))
    if rows is None:
        return None
    counted = _ts_one_frame_per_pes(data, rows, kind)
    if counted is None:
        counted = _es_samples(_joined(data, rows.starts, rows.ends), kind)
    return _length(counted, kind, codec, sample_rate)


def identify_mpeg_ps(data: mmap.mmap) -> Identified | None:
    found = _ps_elementary(data, limit=min(len(data), _IDENTIFY_BYTES))
    if found is None:
        return None
    es, has_video = found
    first = _first_frame(es, "mpeg")
    if first is None:
        return None
    codec, rate, channels = first
    return Identified("mpeg", codec, rate, channels, has_video=has_video)


def mpeg_ps_length(data: mmap.mmap, codec: str, sample_rate: int) -> AudioLength | None:
    walkers = compiled.compiled_walkers()
    counted = None if walkers is None else _ps_compiled(data, walkers)
    if counted is not None:
        return _length(counted, "mpeg", codec, sample_rate)
    found = _ps_elementary(data, limit=len(data))
    return None if found is None else _length(_es_samples(found[0], "mpeg"), "mpeg", codec, sample_rate)


# --- elementary streams ---------------------------------------------------------------------------------------------
def _first_frame(es: _Buffer, kind: str) -> tuple[str, int, int] | None:
    """(codec, rate, channels) of the frame the elementary stream starts with (no junk before it)."""
    if len(es) < 4:
        return None
    header = _WORD.unpack_from(es, 0)[0]
    if kind == "adts":
        fields = _adts_fields(header)
        if fields is None or (header >> 14) & 3 != 1:  # AAC-LC (profile 1) only
            return None
        rate, channels = fields
        return ("aac", rate, channels) if 1 <= channels <= 6 else None
    found = _find_stream(_buffer(es), 0, 4)
    if found is None or found[0] != 0:
        return None
    stream = found[1]
    channels = 1 if (header >> 6) & 3 == 3 else 2
    return {1: "mp1", 2: "mp2", 3: "mp3"}[stream.layer], stream.rate, channels


def _es_samples(es: _Buffer, kind: str) -> tuple[int, int] | None:
    """(samples, rate) of the frames of an elementary stream that starts with a frame."""
    if kind == "adts":
        return _adts_samples(es)
    found = _find_stream(_buffer(es), 0, min(len(es), _FIRST_FRAME_WINDOW))
    if found is None:
        return 0, 1
    position, stream = found
    frames, _ = _walk(_buffer(es), position, stream.reference)
    return frames * stream.samples, stream.rate


def _length(counted: tuple[int, int] | None, kind: str, codec: str, sample_rate: int) -> AudioLength | None:
    """The samples counted, at the rate ffprobe reports (it may report twice the ADTS rate when it finds SBR: the
    same seconds)."""
    if counted is None or codec not in (("aac",) if kind == "adts" else ("mp1", "mp2", "mp3")):
        return None
    samples, rate = counted
    return AudioLength(samples * sample_rate // rate, sample_rate, exact=False)


def _buffer(es: _Buffer) -> mmap.mmap:
    """The MPEG audio walker reads any buffer (``find``, slices, ``memoryview``, numpy); it is typed for the mmap of a
    file, and here walks the elementary stream joined in memory."""
    return cast(mmap.mmap, es)


def _adts_fields(header: int) -> tuple[int, int] | None:
    """(rate, channels) of an ADTS header's first four bytes, if they are one."""
    if header >> 20 != 0xFFF or (header >> 17) & 3 != 0:  # sync, layer 0
        return None
    rate_index, channels = (header >> 10) & 0x0F, (header >> 6) & 0x07
    if rate_index >= len(_AAC_RATES) or channels == 0:
        return None
    return _AAC_RATES[rate_index], channels


def _adts_samples(es: _Buffer) -> tuple[int, int] | None:
    """(samples, rate) of the ADTS frames of the first frame's stream: ``elementary``'s walk with ffmpeg's resume rule
    (its ADTS parser's, as ffmpeg's MPEG-TS/PS demuxers use it), a frame stating several raw data blocks counted as
    the one ffmpeg's decoder plays."""
    if len(es) < _ADTS_HEADER:
        return None
    fields = _adts_fields(_WORD.unpack_from(es, 0)[0])
    kind = elementary.adts_kind(bytes(es[:8]))
    if fields is None or kind is None:
        return None
    samples = elementary.stream_samples(es, kind, 0, 0)
    return (0 if samples is None else samples), fields[0]


# --- transport streams ----------------------------------------------------------------------------------------------
def _ts_count(data: mmap.mmap, limit: int) -> int | None:
    """How many 188-byte packets from the first byte up to ``limit`` are in sync; ``None`` when the sync is lost and
    packets follow again (junk inside the stream, another packet size), which is ffprobe's to judge. A cut last packet
    and trailing junk end the stream."""
    limit = min(limit, len(data))
    count = limit // _TS_PACKET
    if count == 0 or data[0] != _TS_SYNC:
        return None
    firsts = np.frombuffer(data, dtype=np.uint8, count=count * _TS_PACKET)[::_TS_PACKET]
    lost = np.flatnonzero(firsts != _TS_SYNC)
    if lost.size == 0:
        return count
    tail = np.frombuffer(
        data, dtype=np.uint8, count=limit - int(lost[0]) * _TS_PACKET, offset=int(lost[0]) * _TS_PACKET
    )
    span = 2 * _TS_PACKET
    if (
        tail.size > span
        and ((tail[:-span] == _TS_SYNC) & (tail[_TS_PACKET:-_TS_PACKET] == _TS_SYNC) & (tail[span:] == _TS_SYNC)).any()
    ):
        return None
    return int(lost[0])


def _ts_packets(data: mmap.mmap, limit: int) -> range | None:
    """Offsets of the packets in sync up to ``limit`` (``_ts_count``)."""
    count = _ts_count(data, limit)
    return None if count is None else range(0, count * _TS_PACKET, _TS_PACKET)


def _ts_payload(data: mmap.mmap, offset: int) -> tuple[int, bool, int, int] | None:
    """(PID, payload unit start, payload offset, payload end) of the packet at ``offset``; ``None`` if scrambled or
    its adaptation field overruns it. The payload offset equals the end when there is none."""
    flags = data[offset + 1]
    pid = ((flags & 0x1F) << 8) | data[offset + 2]
    control = data[offset + 3]
    if control & 0xC0:
        return None  # scrambled
    start = offset + 4
    if control & 0x20:
        start += 1 + data[offset + 4]
    end = offset + _TS_PACKET
    if start > end:
        return None
    if not control & 0x10:
        start = end  # no payload
    return pid, bool(flags & 0x40), start, end


def _ts_section(data: mmap.mmap, packets: Sequence[int], pid: int, table_id: int) -> bytes | None:
    """The first section ``table_id`` on ``pid`` that starts and ends in one packet."""
    for offset in packets:
        parsed = _ts_payload(data, offset)
        if parsed is None or parsed[0] != pid or not parsed[1]:
            continue
        _, _, start, end = parsed
        if start >= end:
            continue
        begin = start + 1 + data[start]  # pointer field
        if begin + 3 > end or data[begin] != table_id:
            return None
        length = ((data[begin + 1] & 0x0F) << 8) | data[begin + 2]
        if begin + 3 + length > end or length < 9:
            return None
        return bytes(data[begin : begin + 3 + length - 4])  # without the CRC
    return None


def _ts_layout(data: mmap.mmap, limit: int) -> tuple[int, str, bool] | None:
    """(audio PID, "adts" or "mpeg", has video) from the PAT and the one program's PMT."""
    packets = _ts_packets(data, limit)
    if packets is None:
        return None
    pat = _ts_section(data, packets, 0, 0x00)
    if pat is None:
        return None
    programs = [struct.unpack_from(">HH", pat, at) for at in range(8, len(pat) - 3, 4)]
    programs = [(number, pmt & 0x1FFF) for number, pmt in programs if number != 0]  # 0: the network PID
    if len(programs) != 1:
        return None
    pmt = _ts_section(data, packets, programs[0][1], 0x02)
    if pmt is None:
        return None
    position = 12 + (((pmt[10] & 0x0F) << 8) | pmt[11])
    audio: list[tuple[int, str]] = []
    has_video = False
    while position + 5 <= len(pmt):
        stream_type = pmt[position]
        pid, info = struct.unpack_from(">HH", pmt, position + 1)
        pid, info = pid & 0x1FFF, info & 0x0FFF
        if stream_type in _TS_AUDIO:
            audio.append((pid, _TS_AUDIO[stream_type]))
        elif stream_type in _TS_VIDEO:
            has_video = True
        else:
            return None  # private data, subtitles, AC-3, LATM...: ffprobe's
        position += 5 + info
    if len(audio) != 1:
        return None
    return audio[0][0], audio[0][1], has_video


@dataclass(frozen=True)
class _Rows:
    """The packets of one PID from its first PES on: file offset of each payload byte run, and where PES start."""

    starts: npt.NDArray[np.int64]  # file offset of each packet's payload (its PES header skipped)
    ends: npt.NDArray[np.int64]  # file offset of each packet's end
    units: npt.NDArray[np.int64]  # indices of the packets that start a PES


def _ts_rows(data: mmap.mmap, pid: int, *, limit: int) -> _Rows | None:
    """``pid``'s payload runs, all packets at once with numpy (a 20-minute stream has 150,000); ``None`` if a packet is
    scrambled or a PES header does not parse or is split across packets."""
    count = _ts_count(data, limit)
    if count is None:
        return None
    flat = np.frombuffer(data, dtype=np.uint8, count=count * _TS_PACKET)
    packets = flat.reshape(count, _TS_PACKET)
    pids = (packets[:, 1] & 0x1F).astype(np.int64) << 8 | packets[:, 2]
    chosen = np.flatnonzero(pids == pid)
    control = packets[:, 3][chosen]
    if (control & 0xC0).any():
        return None  # scrambled
    starts = np.full(chosen.size, 4, dtype=np.int64)
    adapted = np.flatnonzero(control & 0x20)
    starts[adapted] += 1 + packets[:, 4][chosen[adapted]].astype(np.int64)
    starts[(control & 0x10) == 0] = _TS_PACKET  # no payload
    units = np.flatnonzero(((packets[:, 1][chosen] & 0x40) != 0) & (starts < _TS_PACKET))
    heads = starts[units]
    if (heads + 9 > _TS_PACKET).any():
        return None  # a PES header split across packets: ffprobe's
    header_at = chosen[units] * _TS_PACKET + heads

    def at(offset: int) -> npt.NDArray[np.int64]:
        column: npt.NDArray[np.int64] = flat[header_at + offset].astype(np.int64)
        return column

    if not ((at(0) == 0) & (at(1) == 0) & (at(2) == 1) & (at(6) >> 6 == 2)).all():
        return None
    starts[units] = heads + 9 + at(8)
    if (starts > _TS_PACKET).any():
        return None
    first = int(units[0]) if units.size else chosen.size
    base = chosen[first:] * _TS_PACKET
    return _Rows(base + starts[first:], base + _TS_PACKET, units - first)


def _ts_elementary(data: mmap.mmap, pid: int, *, limit: int) -> _Buffer | None:
    """The PES payloads of ``pid`` joined, PES headers removed, from its first PES on (in C where the compiled walkers
    are built: ``_ts_rows`` and ``_joined`` without a Python step per packet)."""
    walkers = compiled.compiled_walkers()
    if walkers is not None:
        count = _ts_count(data, limit)
        return None if count is None else walkers.ts_payloads(compiled.Mapped(data), count=count, pid=pid)
    rows = _ts_rows(data, pid, limit=limit)
    return None if rows is None else _joined(data, rows.starts, rows.ends)


def _joined(data: mmap.mmap, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]) -> bytes:
    view = memoryview(data)
    try:
        return b"".join([view[start:end] for start, end in zip(starts.tolist(), ends.tolist(), strict=True)])
    finally:
        view.release()  # the mmap cannot close while a view of it is alive


def _ts_compiled(data: mmap.mmap, walkers: compiled.CompiledWalkers, pid: int, kind: str) -> tuple[int, int] | None:
    """(samples, rate) as ``_ts_one_frame_per_pes`` or the joined stream's walk count them, in C: the PES are read
    where they lie (``earshot_ts_pes_frames``), and only the last PES, or a stream they do not take, is joined."""
    head = _ts_elementary(data, pid, limit=min(len(data), _IDENTIFY_BYTES))
    if head is None:
        return None
    mapped = compiled.Mapped(data)
    packets = len(data) // _TS_PACKET  # the C walk reads those in sync (``_ts_count`` would be one more pass)
    first = _WORD.unpack_from(head, 0)[0] if len(head) >= 4 else 0
    shortcut: tuple[int, int, int, compiled.FrameSizes | None] | None = None  # mask, reference, samples, sizes
    if kind == "adts" and (fields := _adts_fields(first)) is not None:
        shortcut, rate = (_ADTS_FIXED, first & _ADTS_FIXED, _AAC_FRAME, None), fields[0]
    elif kind == "mpeg" and _valid_header(first):
        stream = _Stream(first)
        reference = first & _STREAM_MASK
        shortcut, rate = (_STREAM_MASK, reference, stream.samples, _compiled_frame_sizes(reference)), stream.rate
    if shortcut is not None:
        mask, reference, per_frame, sizes = shortcut
        found = walkers.ts_pes_frames(
            mapped, count=packets, pid=pid, adts=kind == "adts", mask=mask, fixed=reference, sizes=sizes
        )
        if found is not None and found[2] < packets:  # lost the packet sync: the stream ends there, or is ffprobe's
            in_sync = _ts_count(data, len(data))
            if in_sync is None:
                return None
            found = found if in_sync == found[2] else None
        tail = None if found is None else walkers.ts_payloads(mapped, count=found[2], pid=pid, first=found[1])
        if found is not None and tail is not None:
            if kind == "adts":
                counted = _adts_samples(tail)
                tail_samples = 0 if counted is None else counted[0]
            else:  # walked on from the frame the chain has reached, as the whole stream's walk would
                tail_samples = _walk(_buffer(tail), 0, reference)[0] * per_frame
            return found[0] * per_frame + tail_samples, rate
    count = _ts_count(data, len(data))
    es = None if count is None else walkers.ts_payloads(mapped, count=count, pid=pid)
    return None if es is None else _es_samples(es, kind)


def _ts_one_frame_per_pes(data: mmap.mmap, rows: _Rows, kind: str) -> tuple[int, int] | None:
    """(samples, rate) when every PES but the last holds exactly one whole frame of one stream (as ffmpeg and most
    muxers write audio), read from each PES's first bytes without joining the stream; ``None`` otherwise.

    The chain of frames is then the PES themselves; the last PES (cut short, or holding several frames) is walked.
    """
    if rows.units.size < 2:
        return None
    lengths = rows.ends - rows.starts
    pes_bytes = np.add.reduceat(lengths, rows.units)
    heads = rows.starts[rows.units]
    if (rows.ends[rows.units] - heads < _ADTS_HEADER).any():
        return None  # a frame header split across packets
    buffer = np.frombuffer(data, dtype=np.uint8)
    byte = [buffer[heads + index].astype(np.int64) for index in range(_ADTS_HEADER)]
    words = byte[0] << 24 | byte[1] << 16 | byte[2] << 8 | byte[3]
    first = int(words[0])
    if kind == "adts":
        fields = _adts_fields(first)
        if fields is None:
            return None
        rate, reference = fields[0], first & _ADTS_FIXED
        per_frame = np.full(words.size, _AAC_FRAME, dtype=np.int64)
        frame_bytes = (byte[3] & 0x3) << 11 | byte[4] << 3 | byte[5] >> 5
        minimum = np.where(byte[1] & 0x01, _ADTS_HEADER, _ADTS_HEADER + 2)  # protection absent, or a CRC follows
        ours = ((words & _ADTS_FIXED) == reference) & (frame_bytes >= minimum)
    else:
        if not _valid_header(first):
            return None
        stream = _Stream(first)
        rate, reference = stream.rate, first & _STREAM_MASK
        frame_bytes = np.asarray(_frame_sizes(reference), dtype=np.int64)[byte[1] << 8 | byte[2]]
        ours = ((words & _STREAM_MASK) == reference) & (frame_bytes > 0)
        per_frame = np.full(words.size, stream.samples, dtype=np.int64)
    whole = ours & (frame_bytes == pes_bytes)
    if not whole[:-1].all():
        return None
    last = int(rows.units[-1])
    tail = _joined(data, rows.starts[last:], rows.ends[last:])
    if not ours[-1]:
        return None
    if kind == "adts":
        counted = _adts_samples(tail)
        tail_samples = 0 if counted is None else counted[0]
    else:  # walked on from the frame the chain has reached, as the whole stream's walk would (a cut one counts)
        tail_samples = _walk(_buffer(tail), 0, reference)[0] * int(per_frame[0])
    return int(per_frame[:-1].sum()) + tail_samples, rate


# --- program streams ------------------------------------------------------------------------------------------------
def _ps_elementary(data: mmap.mmap, *, limit: int) -> tuple[bytes, bool] | None:
    """(the one MPEG audio stream's PES payloads joined, whether video packets are present) up to ``limit``."""
    if data[:4] != b"\x00\x00\x01\xba":
        return None
    audio_id: int | None = None
    has_video = False
    parts: list[bytes] = []
    position, size = 0, len(data)
    while position + 6 <= limit:
        if data[position : position + 3] != b"\x00\x00\x01":
            # Junk: resume at the next pack, as ffmpeg's demuxer resyncs on the next start code.
            position = data.find(b"\x00\x00\x01\xba", position + 1, limit)
            if position < 0:
                break
            continue
        stream_id = data[position + 3]
        if stream_id == _PS_PACK:
            mode = data[position + 4]
            if mode >> 6 == 1:  # MPEG-2 pack header, then stuffing
                if position + 14 > size:
                    break
                position += 14 + (data[position + 13] & 0x07)
            elif mode >> 4 == 2:  # MPEG-1
                position += 12
            else:
                return None
            continue
        if stream_id == _PS_END:
            position += 4
            continue
        length = struct.unpack_from(">H", data, position + 4)[0]
        body, end = position + 6, min(position + 6 + length, size)
        position += 6 + length
        if 0xE0 <= stream_id <= 0xEF:
            has_video = True
        elif 0xC0 <= stream_id <= 0xDF:
            if audio_id is None:
                audio_id = stream_id
            elif stream_id != audio_id:
                return None  # a second audio stream: ffprobe's to pick from
            start = _pes_payload(data, body, end)
            if start is None:
                return None
            parts.append(data[start:end])
        elif stream_id not in _PS_SKIPPED:
            return None  # private stream 1 (AC-3, LPCM, subtitles) and the rest: ffprobe's
    if audio_id is None:
        return None
    return b"".join(parts), has_video


def _ps_compiled(data: mmap.mmap, walkers: compiled.CompiledWalkers) -> tuple[int, int] | None:
    """(samples, rate) as ``_es_samples`` counts the joined stream, walked in C where the stream is plain; ``None``
    where the C walk hands it back (the Python walk then counts it, or refuses it)."""
    found = _ps_elementary(data, limit=min(len(data), _IDENTIFY_BYTES))
    if found is None or (len(found[0]) < _FIRST_FRAME_WINDOW + 16 * 1024 and len(data) > _IDENTIFY_BYTES):
        return None  # the first frame is looked for in the joined stream's first 64 KiB: this head must hold them
    first = _find_stream(_buffer(found[0]), 0, min(len(found[0]), _FIRST_FRAME_WINDOW))
    if first is None:
        return None
    position, stream = first
    frames = walkers.ps_mpeg_frames(
        compiled.Mapped(data), start=position, sizes=_compiled_frame_sizes(stream.reference)
    )
    return None if frames is None else (frames * stream.samples, stream.rate)


def _pes_payload(data: mmap.mmap, body: int, end: int) -> int | None:
    """Where a program stream PES packet's payload starts (MPEG-2 or MPEG-1 header), if the header parses."""
    if body >= end:
        return None
    if data[body] >> 6 == 2:  # MPEG-2: flags, header length
        start = body + 3 + data[body + 2] if body + 3 <= end else end + 1
        return start if start <= end else None
    position = body
    while position < end and data[position] == 0xFF and position - body < 16:  # stuffing
        position += 1
    if position < end and data[position] >> 6 == 1:  # STD buffer
        position += 2
    if position >= end:
        return None
    lead = data[position] >> 4
    if lead == 2:
        position += 5  # PTS
    elif lead == 3:
        position += 10  # PTS and DTS
    elif data[position] == 0x0F:
        position += 1
    else:
        return None
    return position if position <= end else None
