"""CAF (Apple Core Audio Format): the packets of the data chunk whose bytes are present, each counted by what its codec
decodes it to, minus the packet table's priming and remainder frames as ffmpeg applies them.

The packet table (``pakt``) is a header: its valid-frame count may claim ten hours or one second, its per-packet frame
counts anything. Which packets exist comes from its byte sizes laid end to end from the start of the audio data, and
only those that lie wholly inside the data chunk and the file count (a cut upload bills what is left). How long each
one plays comes from the codec: an ALAC packet's own header (the frame length of the magic cookie, or the sample count
of a partial frame), a FLAC frame's header block size (CRC-8 checked), an AAC packet 1024 samples, PCM and IMA4 their
bytes. Priming is trimmed at the start as the decoder does, believed only up to a few packets; the remainder only at
the end of a file whose every packet is present, and only as far as the last packet plays (ffmpeg ignores it beyond
that). Anything else (other codecs, a table that does not parse, no packet table where one is needed) is left to
ffprobe.
"""

from __future__ import annotations

import mmap
import struct

import numpy as np
import numpy.typing as npt

from earshot.audio.lengths.common import AudioLength, Identified, pcm_sample_bytes
from earshot.audio.lengths.flac import frame_block_sizes

_AAC_FRAME = 1024
_IMA4_BLOCK = 34
_IMA4_SAMPLES = 64
_MAX_CHANNELS = 8
_G711 = {b"ulaw": "pcm_mulaw", b"alaw": "pcm_alaw"}
# Priming believed only up to this many packets' worth of frames (encoders prime one or two).
_MAX_PRIMING_PACKETS = 4
# ALAC syntax elements that may open a frame (single channel, channel pair, LFE); others stop ffmpeg's decoder.
_ALAC_FIRST_ELEMENTS = (0, 1, 3)
_ALAC_MAX_FRAME = 1 << 16
_VARINT_MAX_BYTES = 5


def caf_length(data: mmap.mmap, codec: str, sample_rate: int) -> AudioLength | None:
    chunks = _chunks(data)
    if chunks is None or b"desc" not in chunks or b"data" not in chunks:
        return None
    desc_at, _ = chunks[b"desc"]
    if desc_at + 32 > len(data):
        return None
    _, _, _, bytes_per_packet, frames_per_packet, channels, _ = struct.unpack_from(">d4sIIIII", data, desc_at)
    data_at, data_end = chunks[b"data"]
    audio_start, audio_end = data_at + 4, min(data_end, len(data))  # after the edit count
    if audio_start > audio_end or channels == 0:
        return None
    if bytes_per_packet and frames_per_packet:  # constant packets: the bytes present say how many
        ima4 = codec == "adpcm_ima_qt" and bytes_per_packet == _IMA4_BLOCK * channels
        if not pcm_sample_bytes(codec) and not ima4:
            return None
        return AudioLength((audio_end - audio_start) // bytes_per_packet * frames_per_packet, sample_rate)
    if b"pakt" not in chunks or bytes_per_packet:
        return None
    table = _packet_table(data, *chunks[b"pakt"], per_packet=1 if frames_per_packet else 2)
    if table is None:
        return None
    sizes, priming, remainder = table
    ends = audio_start + np.cumsum(sizes)
    present = int(np.searchsorted(ends, audio_end, side="right"))
    offsets = (ends - sizes)[:present]
    if codec == "alac":
        frame_length = _alac_frame_length(data, chunks.get(b"kuki"))
        if frame_length is None or frames_per_packet != frame_length:
            return None
        per_packet = _alac_samples(data, offsets, frame_length)
    elif codec == "flac":
        per_packet = frame_block_sizes(data, offsets)
    elif codec == "aac" and frames_per_packet == _AAC_FRAME:
        per_packet = np.full(present, _AAC_FRAME, dtype=np.int64)
    else:
        return None
    total = int(per_packet.sum())
    if 0 < priming <= _MAX_PRIMING_PACKETS * int(per_packet.max(initial=0)):
        total -= priming
    if frames_per_packet and present == sizes.size and present and 0 < remainder <= int(per_packet[-1]):
        total -= remainder
    return AudioLength(max(0, total), sample_rate, exact=present == sizes.size)


def identify_caf(data: mmap.mmap) -> Identified | None:
    """A CAF whose description names ALAC, FLAC, IMA4, G.711 or integer/float PCM, as ffprobe names it; else ``None``.

    The description chunk comes first (as the format requires) with a whole rate and 1-8 channels, the audio data
    chunk is there, and a codec with variable packets has its packet table (and ALAC its cookie, agreeing with the
    description). Anything else (AAC, Opus, other codecs) is ffprobe's.
    """
    chunks = _chunks(data)
    if chunks is None or data[8:12] != b"desc" or b"data" not in chunks:
        return None
    at = chunks[b"desc"][0]
    if at + 32 > len(data):
        return None
    rate, format_id, flags, bytes_per_packet, frames_per_packet, channels, bits = struct.unpack_from(
        ">d4sIIIII", data, at
    )
    if not (rate.is_integer() and 2000 <= rate <= 768_000 and 1 <= channels <= _MAX_CHANNELS):
        return None
    if format_id == b"lpcm":
        codec = _lpcm_codec(flags, bits)
        if codec is None or bytes_per_packet != channels * bits // 8 or frames_per_packet != 1:
            return None
    elif format_id in _G711:
        codec = _G711[format_id]
        if bytes_per_packet != channels or frames_per_packet != 1:
            return None
    elif format_id == b"ima4":
        codec = "adpcm_ima_qt"
        if bytes_per_packet != _IMA4_BLOCK * channels or frames_per_packet != _IMA4_SAMPLES:
            return None
    elif format_id in (b"alac", b"flac") and not bytes_per_packet and b"pakt" in chunks:
        codec = format_id.decode()
        if codec == "alac" and _alac_config(data, chunks.get(b"kuki")) != (frames_per_packet, channels, int(rate)):
            return None
    else:
        return None
    return Identified("caf", codec, int(rate), channels)


def _lpcm_codec(flags: int, bits: int) -> str | None:
    """ffmpeg's name for linear PCM by the description's flags (bit 0 float, bit 1 little-endian) and depth."""
    endian = "le" if flags & 2 else "be"
    if flags & 1:
        return f"pcm_f{bits}{endian}" if bits in (32, 64) else None
    if bits == 8:
        return "pcm_s8"
    return f"pcm_s{bits}{endian}" if bits in (16, 24, 32) else None


def _chunks(data: mmap.mmap) -> dict[bytes, tuple[int, int]] | None:
    """(body offset, body end) of the first chunk of each type; a data chunk of unknown size (-1) runs to the end."""
    if len(data) < 8 or data[:4] != b"caff" or data[4:6] != b"\x00\x01":
        return None
    found: dict[bytes, tuple[int, int]] = {}
    position = 8
    while position + 12 <= len(data):
        kind = bytes(data[position : position + 4])
        size = struct.unpack_from(">q", data, position + 4)[0]
        body = position + 12
        if size == -1 and kind == b"data":
            found.setdefault(kind, (body, len(data)))
            break
        if size < 0:
            break  # trailing junk: the chunks before it are what ffmpeg reads
        found.setdefault(kind, (body, body + size))
        position = body + size
    return found


def _packet_table(
    data: mmap.mmap, start: int, end: int, *, per_packet: int
) -> tuple[npt.NDArray[np.int64], int, int] | None:
    """(packet byte sizes, priming frames, remainder frames) of a ``pakt`` chunk; its frame counts are not read."""
    end = min(end, len(data))
    if start + 24 > end:
        return None
    packets, _valid, priming, remainder = struct.unpack_from(">qqii", data, start)
    if packets < 0:
        return None
    varints = np.frombuffer(data, dtype=np.uint8, count=end - start - 24, offset=start + 24)
    last_bytes = np.flatnonzero(varints < 0x80)
    needed = packets * per_packet
    if last_bytes.size < needed:
        return None  # a table shorter than it says: ffmpeg refuses it
    last_bytes = last_bytes[:needed]
    firsts = np.concatenate(([0], last_bytes[:-1] + 1)) if needed else last_bytes
    lengths = last_bytes - firsts + 1
    if needed and int(lengths.max()) > _VARINT_MAX_BYTES:
        return None
    values = np.zeros(needed, dtype=np.int64)
    for index in range(int(lengths.max(initial=0))):
        lanes = lengths > index
        values[lanes] = (values[lanes] << 7) | (varints[firsts[lanes] + index] & 0x7F)
    sizes = values[::per_packet]
    return sizes, int(priming), int(remainder)


def _alac_config(data: mmap.mmap, kuki: tuple[int, int] | None) -> tuple[int, int, int] | None:
    """(frame length, channels, rate) of the ALAC magic cookie (bare, or inside QuickTime's ``frma``/``alac`` atoms)."""
    if kuki is None:
        return None
    start, end = kuki[0], min(kuki[1], len(data))
    if data[start + 4 : start + 8] == b"frma":
        start += 12
    if data[start + 4 : start + 8] == b"alac":
        start += 12
    if start + 24 > end:
        return None
    frame_length = struct.unpack_from(">I", data, start)[0]
    if not 0 < frame_length <= _ALAC_MAX_FRAME:
        return None
    return int(frame_length), int(data[start + 9]), int(struct.unpack_from(">I", data, start + 20)[0])


def _alac_frame_length(data: mmap.mmap, kuki: tuple[int, int] | None) -> int | None:
    config = _alac_config(data, kuki)
    return None if config is None else config[0]


def _alac_samples(data: mmap.mmap, offsets: npt.NDArray[np.int64], frame_length: int) -> npt.NDArray[np.int64]:
    """Samples each ALAC packet decodes to: the frame length, or a partial frame's own count (never above it)."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    heads = np.zeros(offsets.size, dtype=np.uint64)
    for index in range(7):  # element (3 bits), tag (4), unused (12), has-size (1), shift (2), escape (1), count (32)
        at = np.minimum(offsets + index, len(data) - 1)
        heads = (heads << np.uint64(8)) | buffer[at].astype(np.uint64)
    heads <<= np.uint64(8)
    element = (heads >> np.uint64(61)).astype(np.int64)
    has_size = ((heads >> np.uint64(44)) & np.uint64(1)).astype(bool)
    count = ((heads >> np.uint64(9)) & np.uint64(0xFFFFFFFF)).astype(np.int64)
    samples = np.where(has_size, count, frame_length)
    samples[(samples <= 0) | (samples > frame_length)] = 0
    samples[~np.isin(element, _ALAC_FIRST_ELEMENTS)] = 0
    samples[offsets + 7 > len(data)] = 0
    return samples.astype(np.int64)
