"""MP4/M4A/MOV/3GP (ISO BMFF) with AAC, Opus, FLAC, ALAC, PCM, IMA4 or AMR: the audio samples whose bytes are present,
each counted by what its codec says it decodes to, minus the edit list's priming.

The sample table's durations (``stts``), ``mdhd`` and ``mvhd`` are headers: a file may claim ten hours or one
second for any number of frames. Which samples exist comes from the samples whose bytes lie inside the file
(``stsz`` sizes at ``stco``/``co64`` chunk offsets through ``stsc``); how long each one plays comes from the
codec, never from ``stts``: an AAC frame always decodes to 1024 samples (2048 with SBR), an Opus packet to what
its TOC byte says, a FLAC frame to its header's block size, an ALAC packet to the cookie's frame length, PCM to
its bytes, IMA4 (QuickTime ADPCM) to 64 samples per whole 34-byte block per channel, AMR to 20 ms per whole speech
frame its header bytes announce. The edit list (or an iTunSMPB tag) then trims the encoder's priming at the start
and its padding at the end, each by at most what it may describe: a few frames, never more audio than that. Other
codecs in mp4 (mp3, AC-3: a fixed count per packet) are counted by ffprobe.
"""

from __future__ import annotations

import mmap
import re
import struct

import numpy as np
import numpy.typing as npt

from earshot.audio.lengths.amr import FRAME_BYTES as AMR_FRAME_BYTES
from earshot.audio.lengths.amr import FRAME_SAMPLES as AMR_FRAME_SAMPLES
from earshot.audio.lengths.amr import walk_frames as walk_amr_frames
from earshot.audio.lengths.codecs import OPUS_MAX_PACKET, OPUS_RATE, alac_frame_samples, opus_packet_samples
from earshot.audio.lengths.common import AudioLength, Identified, pcm_sample_bytes
from earshot.audio.lengths.flac import _parse_frame, frame_block_sizes

_AAC_FRAME = 1024
_CODED = ("aac", "opus", "flac", "alac", "adpcm_ima_qt", "amr_nb", "amr_wb")
# IMA4 (QuickTime's IMA ADPCM): 34 bytes per channel decode to 64 samples.
_IMA4_BLOCK = 34
_IMA4_SAMPLES = 64
# At most this much priming or end padding is believed (AAC encoders prime 1024-2112 samples).
_MAX_TRIM_FRAMES = 4
# ``stsc``: ffmpeg reads a run's samples-per-chunk signed; a count of 2^31 or more is its negative, rewritten as 1.
_MAX_CHUNK_SAMPLES = 2**31 - 1
# A constant ``stsz`` size below this is left to ffprobe by ``_samples_present`` (a 25 MB file of 1-byte samples
# would be 25 million table rows in memory). Every coded packet it sizes (ALAC, FLAC, AMR, Opus) is larger.
_MIN_CONSTANT_SIZE = 8
# ffmpeg builds no index at all (no packet, nothing decodes) for a track of this many samples or more: one
# ``AVIndexEntry`` (24 bytes) each must stay under 4 GiB. Such a table is left to ffprobe, which then refuses it.
_MAX_INDEXED_SAMPLES = (2**32 - 1) // 24
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"udta"}


def _boxes(data: mmap.mmap, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, body offset, body end) of the boxes between ``start`` and ``end``."""
    found = []
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, position)
        body = position + 8
        if size == 1:
            if position + 16 > end:
                break
            size = struct.unpack_from(">Q", data, position + 8)[0]
            body = position + 16
        elif size == 0:
            size = end - position
        if size < body - position:
            break
        found.append((kind, body, min(end, position + size)))
        position += size
    return found


def _child(data: mmap.mmap, parent: tuple[int, int], kind: bytes) -> tuple[int, int] | None:
    for found, body, end in _boxes(data, *parent):
        if found == kind:
            return body, end
    return None


def _table(data: mmap.mmap, body: int, end: int, width: int, per_entry: int = 1) -> npt.NDArray[np.int64] | None:
    """A full box's big-endian array of ``count`` entries (count at ``body + 4``, entries from ``body + 8``)."""
    if body + 8 > end:
        return None
    count = struct.unpack_from(">I", data, body + 4)[0] * per_entry
    start = body + 8
    if start + count * width > end:
        return None
    dtype = ">u4" if width == 4 else ">u8"
    return np.frombuffer(data, dtype=dtype, count=count, offset=start).astype(np.int64)


def _audio_trak(data: mmap.mmap, moov: tuple[int, int]) -> tuple[int, int] | None:
    for kind, body, end in _boxes(data, *moov):
        if kind != b"trak":
            continue
        mdia = _child(data, (body, end), b"mdia")
        hdlr = _child(data, mdia, b"hdlr") if mdia else None
        if hdlr and data[hdlr[0] + 8 : hdlr[0] + 12] == b"soun":
            return body, end
    return None


def mp4_length(data: mmap.mmap, codec: str, sample_rate: int) -> AudioLength | None:
    if codec not in _CODED and not pcm_sample_bytes(codec):
        return None
    top = _boxes(data, 0, len(data))
    fragmented = any(kind == b"moof" for kind, _, _ in top)
    if fragmented and codec == "aac":
        return None  # fragmented AAC: ffprobe counts its packets (1024 samples each, whatever trun says)
    moov = next(((body, end) for kind, body, end in top if kind == b"moov"), None)
    if moov is None:
        return None
    trak = _audio_trak(data, moov)
    if trak is None:
        return None
    mdia = _child(data, trak, b"mdia")
    minf = _child(data, mdia, b"minf") if mdia else None
    stbl = _child(data, minf, b"stbl") if minf else None
    mdhd = _child(data, mdia, b"mdhd") if mdia else None
    if stbl is None or mdhd is None:
        return None
    if fragmented:
        found = _fragment_samples(data, top, trak, moov)
        if found is None:
            return None
        if pcm_sample_bytes(codec):
            channels = _entry_channels(data, stbl)
            return (
                AudioLength(int(found[1].sum()) // (pcm_sample_bytes(codec) * channels), sample_rate)
                if channels
                else None
            )
        return _coded_length(data, stbl, trak, moov, codec, sample_rate, *found, _media_timescale(data, mdhd))
    if pcm_sample_bytes(codec):
        return _pcm_length(data, stbl, codec, sample_rate)
    if codec == "adpcm_ima_qt" and _one_tick_per_sample(data, stbl):
        return _ima4_chunk_length(data, stbl, sample_rate)
    if codec == "adpcm_ima_qt" and (constant := _constant_samples_present(data, stbl)) is not None:
        block = _ima4_block_bytes(data, stbl)
        if block is None:
            return None
        count, size = constant  # every packet the same size: its whole blocks, 64 samples each
        played = count * (size // block * _IMA4_SAMPLES)
        return _trimmed(data, trak, moov, _media_timescale(data, mdhd), played, sample_rate, sample_rate, _IMA4_SAMPLES)
    timescale = _media_timescale(data, mdhd)
    if codec != "aac":
        found = _samples_present(data, stbl)
        return None if found is None else _coded_length(data, stbl, trak, moov, codec, sample_rate, *found, timescale)
    # AAC: every frame present counts 1024 samples, so only how many are wholly in the file matters.
    constant = _constant_samples_present(data, stbl)
    if constant is not None:
        present = constant[0]
    elif (found := _samples_present(data, stbl)) is not None:
        present = found[0].size
    else:
        return None
    # Output samples per AAC frame at the rate ffprobe reports (SBR doubles the rate, and the frame with it).
    core_rate = _entry_rate(data, stbl) or sample_rate
    per_frame = _AAC_FRAME * sample_rate // core_rate if core_rate else _AAC_FRAME
    total = present * per_frame
    priming, kept = _edit(data, trak, moov, timescale, sample_rate)
    if priming is None:
        priming, kept = _itunsmpb(data, moov)
    limit = _MAX_TRIM_FRAMES * per_frame
    exact = False
    if priming is not None and 0 <= priming <= limit:
        total -= priming
        exact = True
        if kept is not None and 0 <= total - kept <= limit:
            total = kept
        else:
            exact = False
    return AudioLength(max(0, total), sample_rate, exact=exact)


def _coded_length(
    data: mmap.mmap,
    stbl: tuple[int, int],
    trak: tuple[int, int],
    moov: tuple[int, int],
    codec: str,
    sample_rate: int,
    offsets: npt.NDArray[np.int64],
    sizes: npt.NDArray[np.int64],
    timescale: int,
) -> AudioLength | None:
    """Opus, FLAC or ALAC samples present, each counted by what the codec decodes it to."""
    entry = _sample_entry(data, stbl)
    if entry is None:
        return None
    rate = sample_rate
    pre_skip: int | None = None  # the codec's own priming, where no edit list states it
    if codec == "opus":
        dops = _child(data, (entry[0] + 8 + 28, entry[1]), b"dOps")
        if dops is not None and dops[0] + 4 <= dops[1]:
            pre_skip = struct.unpack_from(">H", data, dops[0] + 2)[0]  # after Version and OutputChannelCount
        buffer = np.frombuffer(data, dtype=np.uint8)
        last = len(data) - 1
        first = np.where(sizes > 0, buffer[np.minimum(offsets, last)], 0).astype(np.uint8)
        second = np.where(sizes > 1, buffer[np.minimum(offsets + 1, last)], 0).astype(np.uint8)
        per_sample = opus_packet_samples(first, second)
        per_sample[sizes == 0] = 0
        rate, max_trim = OPUS_RATE, OPUS_MAX_PACKET
    elif codec == "flac":
        per_sample = frame_block_sizes(data, offsets)
        max_trim = int(per_sample.max(initial=0))
    elif codec == "alac":
        # The magic cookie box (a full box, version 0), not the entry's own type or QuickTime's ``frma``.
        cookie = data.find(b"alac\x00\x00\x00\x00", entry[0] + 8, entry[1])
        if cookie < 0 or cookie + 12 > entry[1]:
            return None
        frame_length = struct.unpack_from(">I", data, cookie + 8)[0]
        if not 0 < frame_length <= 1 << 16:
            return None
        # Each frame decodes to the frame length, or to the count its header states (the encoder's last frame).
        heads = offsets[:, None] + np.arange(8, dtype=np.int64)
        inside = np.arange(8, dtype=np.int64) < sizes[:, None]
        buffer = np.frombuffer(data, dtype=np.uint8)
        head_bytes = np.where(inside, buffer[np.where(inside, heads, 0)], 0).astype(np.uint8)
        per_sample = alac_frame_samples(head_bytes, frame_length)
        max_trim = frame_length
    elif codec == "adpcm_ima_qt":
        block = _ima4_block_bytes(data, stbl)
        if block is None:
            return None
        # The decoder turns every whole 34-byte block per channel of a packet into 64 samples, and drops the rest.
        per_sample = sizes // block * _IMA4_SAMPLES
        max_trim = _IMA4_SAMPLES
    elif codec in AMR_FRAME_BYTES:
        if _entry_channels(data, stbl) != 1:
            return None
        per_sample = _amr_samples(data, offsets, sizes, codec)
        max_trim = AMR_FRAME_SAMPLES[codec]
    else:
        return None
    return _trimmed(data, trak, moov, timescale, int(per_sample.sum()), rate, sample_rate, max_trim, pre_skip)


def _trimmed(
    data: mmap.mmap,
    trak: tuple[int, int],
    moov: tuple[int, int],
    timescale: int,
    total: int,
    rate: int,
    sample_rate: int,
    max_trim: int,
    pre_skip: int | None = None,
) -> AudioLength:
    """``total`` samples at ``rate`` less the edit list's priming and padding (each believed up to ``max_trim``), at
    ``sample_rate``. Without an edit list, ``pre_skip`` (the Opus ``dOps`` pre-skip, which the decoder drops then) is
    the priming."""
    priming, kept = _edit(data, trak, moov, timescale, rate)
    if priming is None and pre_skip is not None:
        priming = pre_skip
    exact = False
    if priming is not None and 0 <= priming <= max_trim:
        total -= priming
        exact = True
        if kept is not None and 0 <= total - kept <= max_trim:
            total = kept
        else:
            exact = False
    played = max(0, total)
    if rate != sample_rate:  # Opus always decodes at 48 kHz; bill at the rate ffprobe reports
        played = played * sample_rate // rate
    return AudioLength(played, sample_rate, exact=exact)


def _one_tick_per_sample(data: mmap.mmap, stbl: tuple[int, int]) -> bool:
    """Whether ``stts`` is one entry of duration 1: QuickTime's old sound layout, whose "samples" are PCM frames and
    whose chunks ffmpeg reads whole (``sample count / samples per packet * bytes per packet`` bytes each)."""
    stts = _child(data, stbl, b"stts")
    if stts is None or stts[0] + 16 > stts[1]:
        return False
    count, _, delta = struct.unpack_from(">III", data, stts[0] + 4)
    return bool(count == 1 and delta == 1)


def _ima4_block_bytes(data: mmap.mmap, stbl: tuple[int, int]) -> int | None:
    """Bytes of one IMA4 block of every channel (34 per channel), when the sound description agrees with it."""
    entry = _sample_entry(data, stbl)
    channels = _entry_channels(data, stbl)
    if entry is None or not 1 <= channels <= 2:
        return None
    block = _IMA4_BLOCK * channels
    if data[entry[0] + 16 : entry[0] + 18] == b"\x00\x01" and entry[0] + 52 <= entry[1]:
        # A version 1 description repeats the packet layout: it must be IMA4's (zeros: left to the codec).
        per_packet, _, per_frame, _ = struct.unpack_from(">IIII", data, entry[0] + 36)
        if per_packet not in (0, _IMA4_SAMPLES) or per_frame not in (0, block):
            return None
    return block


def _ima4_chunk_length(data: mmap.mmap, stbl: tuple[int, int], sample_rate: int) -> AudioLength | None:
    """IMA4 in QuickTime's old layout: each chunk's whole blocks that lie inside the file, 64 samples each."""
    block = _ima4_block_bytes(data, stbl)
    chunks = _chunks(data, stbl)
    if block is None or chunks is None:
        return None
    offsets, per_chunk = chunks
    if (per_chunk % _IMA4_SAMPLES).any():
        return None  # ffmpeg refuses a chunk that is not whole packets
    blocks = np.clip((len(data) - offsets) // block, 0, per_chunk // _IMA4_SAMPLES)
    return AudioLength(int(blocks.sum()) * _IMA4_SAMPLES, sample_rate)


def _amr_samples(
    data: mmap.mmap, offsets: npt.NDArray[np.int64], sizes: npt.NDArray[np.int64], codec: str
) -> npt.NDArray[np.int64]:
    """Samples each AMR packet decodes to: 160 (NB) or 320 (WB) per whole speech frame, up to the first frame the
    decoder rejects (comfort noise, no data, a reserved mode, a frame cut short), after which it drops the packet.
    """
    table = AMR_FRAME_BYTES[codec]
    frame_samples = AMR_FRAME_SAMPLES[codec]
    buffer = np.frombuffer(data, dtype=np.uint8)
    heads = np.where(sizes > 0, buffer[np.minimum(offsets, len(data) - 1)], 0)
    expected = np.asarray(table, dtype=np.int64)[(heads >> 3) & 0x0F]
    per_sample = np.where((expected > 0) & (sizes >= expected), frame_samples, 0).astype(np.int64)
    for index in np.flatnonzero((expected > 0) & (sizes > expected)):  # packets of several frames, walked one by one
        start = int(offsets[index])
        per_sample[index] = walk_amr_frames(data, start, start + int(sizes[index]), codec) * frame_samples
    return per_sample


def _pcm_length(data: mmap.mmap, stbl: tuple[int, int], codec: str, sample_rate: int) -> AudioLength | None:
    """PCM: the bytes of its chunks that lie inside the file, over the bytes of one sample of every channel.

    Computed chunk by chunk (a PCM track has one table entry per sample: millions of them).
    """
    entry = _sample_entry(data, stbl)
    stsz = _child(data, stbl, b"stsz")
    if entry is None or stsz is None or stsz[0] + 12 > stsz[1]:
        return None
    channels = _entry_channels(data, stbl)
    if not channels:
        return None
    frame_bytes = pcm_sample_bytes(codec) * channels
    constant = struct.unpack_from(">I", data, stsz[0] + 4)[0]
    chunks = _chunks(data, stbl)
    if not constant or chunks is None:
        found = _samples_present(data, stbl)
        return None if found is None else AudioLength(int(found[1].sum()) // frame_bytes, sample_rate)
    offsets, per_chunk = chunks
    present = np.clip(len(data) - offsets, 0, per_chunk * constant) // constant * constant
    return AudioLength(int(present.sum()) // frame_bytes, sample_rate)


def _entry_channels(data: mmap.mmap, stbl: tuple[int, int]) -> int:
    """The first sample description's channel count; 0 when a version 2 description keeps it elsewhere."""
    entry = _sample_entry(data, stbl)
    if entry is None or data[entry[0] + 16 : entry[0] + 18] == b"\x00\x02":
        return 0
    return int(struct.unpack_from(">H", data, entry[0] + 24)[0])


def _fragment_samples(
    data: mmap.mmap, top: list[tuple[bytes, int, int]], trak: tuple[int, int], moov: tuple[int, int]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
    """(offset, size) of the audio track's samples in every movie fragment, those wholly inside the file.

    ``trun`` sample durations (and ``tfhd``/``trex`` default durations) are headers and are not read; sizes and
    offsets say which samples exist.
    """
    tkhd = _child(data, trak, b"tkhd")
    if tkhd is None:
        return None
    track_id = struct.unpack_from(">I", data, tkhd[0] + (20 if data[tkhd[0]] == 1 else 12))[0]
    default_size = 0
    mvex = _child(data, moov, b"mvex")
    for kind, body, end in _boxes(data, *mvex) if mvex else []:
        if kind == b"trex" and body + 24 <= end and struct.unpack_from(">I", data, body + 4)[0] == track_id:
            default_size = struct.unpack_from(">I", data, body + 16)[0]
    offsets: list[npt.NDArray[np.int64]] = []
    sizes: list[npt.NDArray[np.int64]] = []
    for kind, moof_body, moof_end in top:
        if kind != b"moof":
            continue
        moof_start = moof_body - 8
        for traf_kind, traf_body, traf_end in _boxes(data, moof_body, moof_end):
            if traf_kind != b"traf":
                continue
            tfhd = _child(data, (traf_body, traf_end), b"tfhd")
            if tfhd is None or tfhd[0] + 8 > tfhd[1]:
                return None
            flags = int.from_bytes(data[tfhd[0] + 1 : tfhd[0] + 4], "big")
            if struct.unpack_from(">I", data, tfhd[0] + 4)[0] != track_id:
                continue
            position = tfhd[0] + 8
            base = moof_start
            if flags & 0x01:
                base = struct.unpack_from(">Q", data, position)[0]
                position += 8
            position += 4 if flags & 0x02 else 0
            position += 4 if flags & 0x08 else 0
            size_default = struct.unpack_from(">I", data, position)[0] if flags & 0x10 else default_size
            cursor = base
            for run_kind, run_body, run_end in _boxes(data, traf_body, traf_end):
                if run_kind != b"trun" or run_body + 8 > run_end:
                    continue
                run_flags = int.from_bytes(data[run_body + 1 : run_body + 4], "big")
                count = struct.unpack_from(">I", data, run_body + 4)[0]
                at = run_body + 8
                if run_flags & 0x01:
                    cursor = base + struct.unpack_from(">i", data, at)[0]
                    at += 4
                at += 4 if run_flags & 0x04 else 0
                fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if run_flags & bit]
                if at + count * 4 * len(fields) > run_end:
                    return None
                if run_flags & 0x200:
                    table = np.frombuffer(data, dtype=">u4", count=count * len(fields), offset=at).astype(np.int64)
                    run_sizes = table.reshape(count, len(fields))[:, fields.index(0x200)]
                elif size_default:
                    run_sizes = np.full(count, size_default, dtype=np.int64)
                else:
                    return None
                ends = cursor + np.cumsum(run_sizes)
                offsets.append(ends - run_sizes)
                sizes.append(run_sizes)
                cursor = int(ends[-1]) if count else cursor
    if not offsets:
        return None
    all_offsets, all_sizes = np.concatenate(offsets), np.concatenate(sizes)
    inside = (all_offsets >= 0) & (all_offsets + all_sizes <= len(data))
    return all_offsets[inside], all_sizes[inside]


def _chunks(data: mmap.mmap, stbl: tuple[int, int]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
    """(offset, samples) of each chunk, from ``stco``/``co64`` and ``stsc``; ``None`` when ffmpeg would not read the
    table as written (ffprobe then decides).

    As ffmpeg reads it: the first run covers every chunk before it too. A run must start after the one before it
    and at the latest on the last chunk, and hold 1 to 2^31 - 1 samples a chunk (ffmpeg reads the count signed and
    rewrites a count below 1 as 1: such a table is left to it).
    """
    stsc = _child(data, stbl, b"stsc")
    stco, width = _child(data, stbl, b"stco"), 4
    if stco is None:
        stco, width = _child(data, stbl, b"co64"), 8
    if stsc is None or stco is None:
        return None
    offsets = _table(data, stco[0], stco[1], width)
    runs = _table(data, stsc[0], stsc[1], 4, per_entry=3)
    if offsets is None or runs is None or runs.size == 0 or runs.size % 3:
        return None
    runs = runs.reshape(-1, 3)  # first chunk (1-based), samples per chunk, description index
    firsts, counts = runs[:, 0] - 1, runs[:, 1]
    if (firsts < 0).any() or (np.diff(firsts) <= 0).any() or firsts[-1] >= offsets.size:
        return None
    if (counts < 1).any() or (counts > _MAX_CHUNK_SAMPLES).any():
        return None
    firsts[0] = 0
    spans = np.diff(np.append(firsts, offsets.size))
    return offsets, np.repeat(counts, spans)


def _held(per_chunk: npt.NDArray[np.int64], count: int) -> npt.NDArray[np.int64]:
    """Samples of each chunk among the sample table's first ``count`` (the chunks say more than ``stsz`` lists: the
    samples no table entry sizes do not exist)."""
    held: npt.NDArray[np.int64] = np.clip(count - (np.cumsum(per_chunk) - per_chunk), 0, per_chunk)
    return held


def _sample_entry(data: mmap.mmap, stbl: tuple[int, int]) -> tuple[int, int] | None:
    """(start, end) of the first sample description (the entry's size field onwards)."""
    stsd = _child(data, stbl, b"stsd")
    if stsd is None or stsd[0] + 16 > stsd[1]:
        return None
    start = stsd[0] + 8
    size = struct.unpack_from(">I", data, start)[0]
    end = min(stsd[1], start + size)
    return (start, end) if end - start >= 36 else None


def _samples_present(
    data: mmap.mmap, stbl: tuple[int, int]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
    """(offset, size) of each of the track's samples that lie wholly inside the file.

    Never sized by a count alone: a ``stsz`` table holds its entries (bounded by the box), and a constant size
    yields only the samples whose bytes the file holds (at most the file's length over the size).
    """
    stsz = _child(data, stbl, b"stsz")
    chunks = _chunks(data, stbl)
    if stsz is None or stsz[0] + 12 > stsz[1] or chunks is None:
        return None
    constant, count = struct.unpack_from(">II", data, stsz[0] + 4)
    offsets, per_chunk = chunks
    if count >= _MAX_INDEXED_SAMPLES:
        return None
    if constant:
        if constant < _MIN_CONSTANT_SIZE:
            return None  # millions of tiny samples: not sized in memory here (ffprobe counts them)
        held = np.clip((len(data) - offsets) // constant, 0, _held(per_chunk, count))
        chunk_of_sample = np.repeat(np.arange(offsets.size), held)
        first_in_chunk = np.cumsum(held) - held
        index_in_chunk = np.arange(chunk_of_sample.size) - first_in_chunk[chunk_of_sample]
        sizes = np.full(chunk_of_sample.size, constant, dtype=np.int64)
        return offsets[chunk_of_sample] + index_in_chunk * constant, sizes
    table = _table(data, stsz[0] + 4, stsz[1], 4)  # stsz has one more field before its count
    if table is None:
        return None
    held = _held(per_chunk, table.size)
    sizes = table[: int(held.sum())]
    chunk_of_sample = np.repeat(np.arange(offsets.size), held)
    first_in_chunk = np.cumsum(held) - held
    ends = np.cumsum(sizes)
    before_chunk = np.concatenate(([0], ends))[first_in_chunk[chunk_of_sample]]
    sample_ends = offsets[chunk_of_sample] + ends - before_chunk
    inside = sample_ends <= len(data)
    return (sample_ends - sizes)[inside], sizes[inside]


def _constant_samples_present(data: mmap.mmap, stbl: tuple[int, int]) -> tuple[int, int] | None:
    """(how many, size) of ``_samples_present``'s samples when ``stsz`` gives every sample one size, else ``None``.

    Counted chunk by chunk (an IMA4 track has a table entry per 34-byte packet: hundreds of thousands of them).
    """
    stsz = _child(data, stbl, b"stsz")
    chunks = _chunks(data, stbl)
    if stsz is None or stsz[0] + 12 > stsz[1] or chunks is None:
        return None
    size, count = struct.unpack_from(">II", data, stsz[0] + 4)
    if not size or count >= _MAX_INDEXED_SAMPLES:
        return None
    offsets, per_chunk = chunks
    return int(np.clip((len(data) - offsets) // size, 0, _held(per_chunk, count)).sum()), int(size)


def _entry_rate(data: mmap.mmap, stbl: tuple[int, int]) -> int:
    """The sample rate in the first sample description (an AudioSampleEntry's 16.16 field)."""
    stsd = _child(data, stbl, b"stsd")
    if stsd is None or stsd[0] + 8 + 36 > stsd[1]:
        return 0
    entry = stsd[0] + 8
    return int(struct.unpack_from(">I", data, entry + 32)[0] >> 16)


def _media_timescale(data: mmap.mmap, mdhd: tuple[int, int]) -> int:
    version = data[mdhd[0]]
    return int(struct.unpack_from(">I", data, mdhd[0] + (20 if version == 1 else 12))[0])


def _edit(
    data: mmap.mmap, trak: tuple[int, int], moov: tuple[int, int], timescale: int, rate: int
) -> tuple[int | None, int | None]:
    """(priming, samples kept) from the track's single edit, in output samples."""
    edts = _child(data, trak, b"edts")
    elst = _child(data, edts, b"elst") if edts else None
    mvhd = _child(data, moov, b"mvhd")
    if elst is None or mvhd is None or timescale <= 0:
        return None, None
    version = data[elst[0]]
    count = struct.unpack_from(">I", data, elst[0] + 4)[0]
    entry = struct.Struct(">Qq" if version == 1 else ">Ii")
    edits = []
    for index in range(min(count, 4)):
        at = elst[0] + 8 + index * (entry.size + 4)
        if at + entry.size > elst[1]:
            return None, None
        edits.append(entry.unpack_from(data, at))
    edits = [edit for edit in edits if edit[1] != -1]  # empty edits only delay presentation
    if len(edits) != 1:
        return None, None
    duration, media_time = edits[0]
    movie_version = data[mvhd[0]]
    movie_scale = struct.unpack_from(">I", data, mvhd[0] + (20 if movie_version == 1 else 12))[0]
    if movie_scale <= 0:
        return None, None
    priming = media_time * rate // timescale
    kept = duration * rate // movie_scale if duration else None
    return priming, kept


_SMPB = re.compile(
    rb"iTunSMPB.{0,64}?data.{8}\s*([0-9A-Fa-f]{8}) ([0-9A-Fa-f]{8}) ([0-9A-Fa-f]{8}) ([0-9A-Fa-f]{16})", re.S
)


def _itunsmpb(data: mmap.mmap, moov: tuple[int, int]) -> tuple[int | None, int | None]:
    """(priming, original samples) from an iTunes gapless tag."""
    found = _SMPB.search(data, moov[0], moov[1])
    if found is None:
        return None, None
    return int(found.group(2), 16), int(found.group(4), 16)


# What identify_mp4 accepts, box by box: anything else (fragments, references to other tracks or files, a second
# track, QuickTime sound descriptions) is ffprobe's to judge.
_TOP_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"udta", b"meta", b"pdin"}
_MOOV_BOXES = {b"mvhd", b"trak", b"udta", b"meta", b"iods", b"free", b"skip"}
_TRAK_BOXES = {b"tkhd", b"mdia", b"edts", b"udta", b"meta", b"free", b"skip"}
_MDIA_BOXES = {b"mdhd", b"hdlr", b"minf", b"udta", b"free", b"skip"}
_MINF_BOXES = {b"smhd", b"dinf", b"stbl", b"hdlr", b"free", b"skip"}  # QuickTime names its data handler here
_AMR_ENTRIES = {b"samr": ("amr_nb", 8000), b"sawb": ("amr_wb", 16000)}
_STBL_BOXES = {b"stsd", b"stts", b"stsc", b"stsz", b"stco", b"co64", b"sgpd", b"sbgp", b"stss", b"free", b"skip"}
# A video track (never read, but it must be a plain one in this file): its header and reordering/sync tables.
_VIDEO_MINF_BOXES = {b"vmhd", b"dinf", b"stbl", b"free", b"skip"}
_VIDEO_STBL_BOXES = _STBL_BOXES | {b"ctts", b"cslg", b"stps", b"sdtp", b"stsh"}
# MPEG-4 Audio (0x40) and MPEG-2 AAC Main/LC/SSR (0x66-0x68) object types in an esds DecoderConfigDescriptor.
_AAC_OBJECT_TYPES = {0x40, 0x66, 0x67, 0x68}
_AAC_LC = 2
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
MP4_FORMAT_NAME = "mov,mp4,m4a,3gp,3g2,mj2"


def identify_mp4(data: mmap.mmap) -> Identified | None:
    """An MP4/M4A/MOV/3GP holding one sound track (AAC-LC, IMA4 or AMR) and any video tracks, named as ffprobe names
    it; else ``None``.

    Accepted only when every box on the way is one of a short list (``_TOP_BOXES`` ...), the file has exactly one
    sound track and otherwise only video tracks, every track's data lies in this file (its one data reference is
    self-contained), and the sound track is described by one entry: ``ima4`` (1-2 channels), ``samr``/``sawb``
    (AMR), or ``mp4a`` (version 0) whose esds holds an AAC-LC AudioSpecificConfig of 1-6 channels at a standard rate
    that the entry's own rate field repeats. An AAC-LC config may hide SBR (implicit HE-AAC): ffprobe then reports
    twice the rate, but the length in seconds is the same either way (a frame is 1024 core samples). Video tracks are
    only checked for their structure: the audio is what is metered, and ``mp4_length`` reads the sound track alone.
    """
    if data[4:8] != b"ftyp":
        return None
    top = _boxes(data, 0, len(data))
    if not top or top[0][0] != b"ftyp" or any(kind not in _TOP_BOXES for kind, _, _ in top):
        return None
    moovs = [(body, end) for kind, body, end in top if kind == b"moov"]
    if len(moovs) != 1:
        return None
    moov_children = _boxes(data, *moovs[0])
    if any(kind not in _MOOV_BOXES for kind, _, _ in moov_children):
        return None
    sound: list[tuple[int, int]] = []
    videos = 0
    for kind, body, end in moov_children:
        if kind != b"trak":
            continue
        handler, stbl = _track(data, (body, end))
        if handler == b"soun" and stbl is not None:
            sound.append(stbl)
        elif handler == b"vide" and stbl is not None and _only(data, stbl, b"stsd", _VIDEO_STBL_BOXES):
            videos += 1
        else:
            return None  # text, chapters, timecode, hint, a damaged track: ffprobe judges
    if len(sound) != 1:
        return None
    stsd = _only(data, sound[0], b"stsd", _STBL_BOXES)
    if stsd is None or stsd[0] + 8 + 36 > stsd[1] or struct.unpack_from(">I", data, stsd[0] + 4)[0] != 1:
        return None
    entry = _boxes(data, stsd[0] + 8, stsd[1])
    if len(entry) != 1:
        return None
    kind, body, end = entry[0]
    has_video = videos > 0
    if kind in _AMR_ENTRIES:  # AMR always decodes mono, at 8 kHz (narrowband) or 16 kHz (wideband)
        codec, rate = _AMR_ENTRIES[kind]
        return Identified(MP4_FORMAT_NAME, codec, rate, 1, has_video=has_video)
    if kind == b"ima4" and body + 28 <= end:
        channels, rate = (
            struct.unpack_from(">H", data, body + 16)[0],
            struct.unpack_from(">I", data, body + 24)[0] >> 16,
        )
        if 1 <= channels <= 2 and 0 < rate <= 192_000:
            return Identified(MP4_FORMAT_NAME, "adpcm_ima_qt", rate, channels, has_video=has_video)
        return None
    if kind not in (b"mp4a", b"alac", b"fLaC", b"Opus") or body + 28 > end:
        return None
    if struct.unpack_from(">H", data, body + 8)[0] != 0:  # sound description version 0 (not QuickTime v1/v2)
        return None
    entry_channels = struct.unpack_from(">H", data, body + 16)[0]
    entry_rate = struct.unpack_from(">I", data, body + 24)[0] >> 16
    if kind != b"mp4a":
        described = _lossless_or_opus(data, kind, (body + 28, end), sound[0])
        if described is None or described[1] != entry_channels:
            return None
        if kind == b"alac" and described[0] != entry_rate:
            return None
        return Identified(MP4_FORMAT_NAME, kind.decode().lower(), *described, has_video=has_video)
    esds = _child(data, (body + 28, end), b"esds")
    config = _audio_specific_config(bytes(data[esds[0] : esds[1]])) if esds else None
    if config is None:
        return None
    rate, channels = config
    if rate != entry_rate:
        return None
    return Identified(MP4_FORMAT_NAME, "aac", rate, channels, has_video=has_video)


# A FLAC frame header's sample rate codes 1-11 (0: the STREAMINFO's; 12-14: stated in the header, left to ffprobe).
_FLAC_CODED_RATES = {1: 88200, 2: 176400, 3: 192000, 4: 8000, 5: 16000, 6: 22050, 7: 24000, 8: 32000, 9: 44100}
_FLAC_CODED_RATES |= {10: 48000, 11: 96000}


def _lossless_or_opus(
    data: mmap.mmap, kind: bytes, children: tuple[int, int], stbl: tuple[int, int]
) -> tuple[int, int] | None:
    """(rate, channels) as ffprobe reports them for an ``alac``, ``fLaC`` or ``Opus`` sample entry whose children
    are ``children``; ``None`` where its configuration box is missing, malformed, or could be overruled by the audio.

    * ALAC: the 36-byte magic cookie box (what ffmpeg takes the rate and channels from), 1-8 channels.
    * FLAC: the ``dfLa`` box's STREAMINFO, confirmed by the first sample's frame header (its CRC-8, a rate code that
      names the same rate, the same channels): ffprobe reports the frames' rate over a STREAMINFO that disagrees.
    * Opus: the ``dOps`` box of channel mapping family 0 (mono or stereo); Opus always decodes at 48 kHz.
    """
    if kind == b"alac":
        cookie = _child(data, children, b"alac")
        if cookie is None or cookie[1] - cookie[0] != 28 or data[cookie[0] : cookie[0] + 4] != b"\0\0\0\0":
            return None
        config = cookie[0] + 4  # ALACSpecificConfig: frameLength (4), ..., numChannels at 9, ..., sampleRate at 20
        frame_length, channels = struct.unpack_from(">I", data, config)[0], data[config + 9]
        rate = struct.unpack_from(">I", data, config + 20)[0]
        if not 0 < frame_length <= 1 << 16 or not 1 <= channels <= 8 or not 0 < rate <= 384_000:
            return None
        return rate, channels
    if kind == b"Opus":
        dops = _child(data, children, b"dOps")
        if dops is None or dops[1] - dops[0] != 11 or data[dops[0]] != 0 or data[dops[0] + 10] != 0:
            return None
        channels = data[dops[0] + 1]
        return (OPUS_RATE, channels) if channels in (1, 2) else None
    dfla = _child(data, children, b"dfLa")
    if dfla is None or dfla[0] + 8 + 34 > dfla[1] or data[dfla[0] : dfla[0] + 4] != b"\0\0\0\0":
        return None
    block = dfla[0] + 4
    if data[block] & 0x7F != 0 or int.from_bytes(data[block + 1 : block + 4], "big") != 34:
        return None  # the first metadata block must be a 34-byte STREAMINFO
    info = int.from_bytes(data[block + 14 : block + 22], "big")  # rate (20 bits), channels - 1 (3), ...
    rate, channels = info >> 44, ((info >> 41) & 7) + 1
    chunks = _chunks(data, stbl)
    if chunks is None or not chunks[0].size or not 0 < rate <= 655_350:
        return None
    frame = _parse_frame(data, int(chunks[0][0]))
    if frame is None or frame.channel_count != channels:
        return None
    coded = rate if frame.rate_code == 0 else _FLAC_CODED_RATES.get(frame.rate_code)
    return (rate, channels) if coded == rate else None


def _track(data: mmap.mmap, trak: tuple[int, int]) -> tuple[bytes, tuple[int, int] | None]:
    """(handler type, stbl) of a track built from known boxes whose media lies in this file; stbl ``None`` if not."""
    mdia = _only(data, trak, b"mdia", _TRAK_BOXES)
    hdlr = _child(data, mdia, b"hdlr") if mdia else None
    if mdia is None or hdlr is None or hdlr[0] + 12 > hdlr[1]:
        return b"", None
    handler = bytes(data[hdlr[0] + 8 : hdlr[0] + 12])
    minf = _only(data, mdia, b"minf", _MDIA_BOXES)
    allowed = _MINF_BOXES if handler == b"soun" else _VIDEO_MINF_BOXES
    stbl = _only(data, minf, b"stbl", allowed) if minf else None
    dinf = _child(data, minf, b"dinf") if minf else None
    dref = _child(data, dinf, b"dref") if dinf else None
    if stbl is None or dref is None or not _self_contained(data, dref):
        return handler, None
    return handler, stbl


def _only(data: mmap.mmap, parent: tuple[int, int], kind: bytes, allowed: set[bytes]) -> tuple[int, int] | None:
    """The one ``kind`` child of ``parent`` when every child is of an ``allowed`` kind, else ``None``."""
    children = _boxes(data, *parent)
    if any(found not in allowed for found, _, _ in children):
        return None
    matching = [(body, end) for found, body, end in children if found == kind]
    return matching[0] if len(matching) == 1 else None


def _self_contained(data: mmap.mmap, dref: tuple[int, int]) -> bool:
    """One data reference, a ``url `` whose flag says the media is in this file (never another file or URL)."""
    if dref[0] + 8 > dref[1] or struct.unpack_from(">I", data, dref[0] + 4)[0] != 1:
        return False
    entries = _boxes(data, dref[0] + 8, dref[1])
    return (
        len(entries) == 1
        and entries[0][0] == b"url "
        and entries[0][2] - entries[0][1] == 4
        and data[entries[0][1] + 3] == 1
    )


def _descriptor(esds: bytes, position: int) -> tuple[int, int, int] | None:
    """(tag, body offset, body end) of the MPEG-4 descriptor at ``position`` (sizes are 7 bits per byte)."""
    if position + 2 > len(esds):
        return None
    tag, size, cursor = esds[position], 0, position + 1
    for _ in range(4):
        if cursor >= len(esds):
            return None
        byte = esds[cursor]
        size, cursor = (size << 7) | (byte & 0x7F), cursor + 1
        if not byte & 0x80:
            break
    else:
        return None
    return (tag, cursor, cursor + size) if cursor + size <= len(esds) else None


def _audio_specific_config(esds: bytes) -> tuple[int, int] | None:
    """(rate, channels) of an esds box body holding an AAC-LC AudioSpecificConfig, else ``None``."""
    if len(esds) < 4 or esds[0] != 0:  # version 0
        return None
    es = _descriptor(esds, 4)
    if es is None or es[0] != 0x03 or es[1] + 3 > es[2]:
        return None
    flags = esds[es[1] + 2]
    if flags & 0x40:  # URL_Flag: the stream lives elsewhere
        return None
    position = es[1] + 3 + (2 if flags & 0x80 else 0) + (2 if flags & 0x20 else 0)
    decoder = _descriptor(esds, position)
    if decoder is None or decoder[0] != 0x04 or decoder[1] + 13 > decoder[2]:
        return None
    if esds[decoder[1]] not in _AAC_OBJECT_TYPES or esds[decoder[1] + 1] >> 2 != 0x05:  # an audio stream
        return None
    specific = _descriptor(esds, decoder[1] + 13)
    if specific is None or specific[0] != 0x05 or specific[2] - specific[1] < 2:
        return None
    bits = int.from_bytes(esds[specific[1] : specific[1] + 2], "big")
    object_type, rate_index, channels = bits >> 11, (bits >> 7) & 0x0F, (bits >> 3) & 0x0F
    if object_type != _AAC_LC or rate_index >= len(_AAC_RATES) or not 1 <= channels <= 6:
        return None
    return _AAC_RATES[rate_index], channels
