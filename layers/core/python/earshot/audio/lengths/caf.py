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

from earshot.audio.lengths.common import AudioLength, pcm_sample_bytes
from earshot.audio.lengths.flac import _parse_frame

_AAC_FRAME = 1024
_IMA4_BLOCK = 34
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
        frames = [_parse_frame(data, int(offset)) for offset in offsets]
        per_packet = np.asarray([frame.block_size if frame else 0 for frame in frames], dtype=np.int64)
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


def _alac_frame_length(data: mmap.mmap, kuki: tuple[int, int] | None) -> int | None:
    """The frame length of the ALAC magic cookie (bare, or inside QuickTime's ``frma``/``alac`` atoms)."""
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
    return int(frame_length) if 0 < frame_length <= _ALAC_MAX_FRAME else None


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
