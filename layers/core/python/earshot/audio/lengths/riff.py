"""WAV (RIFF and RF64) holding PCM or G.711: the samples are the data chunk's bytes that are present."""

from __future__ import annotations

import mmap
import struct

from earshot.audio.lengths.common import AudioLength

_PCM_TAGS = {1, 3, 6, 7}  # integer PCM, IEEE float, G.711 A-law and mu-law (one byte a sample)
_EXTENSIBLE = 0xFFFE
_UNKNOWN_SIZES = {0, 0xFFFFFFFF}  # a streaming writer's placeholder, or RF64's pointer to ds64


def wav_length(data: mmap.mmap, codec: str, sample_rate: int) -> AudioLength | None:
    """Whole blocks of the data chunk present in the file (and no more than its size says, when it says one)."""
    if not codec.startswith("pcm_") or len(data) < 12 or data[8:12] != b"WAVE" or data[:4] not in (b"RIFF", b"RF64"):
        return None
    block_align = 0
    rf64_data_size: int | None = None
    position = 12
    while position + 8 <= len(data):
        chunk, size = data[position : position + 4], struct.unpack_from("<I", data, position + 4)[0]
        body = position + 8
        if chunk == b"fmt " and size >= 16:
            tag, channels, _rate, _byte_rate, block_align = struct.unpack_from("<HHIIH", data, body)
            if tag == _EXTENSIBLE and size >= 40:
                tag = struct.unpack_from("<H", data, body + 24)[0]
            if tag not in _PCM_TAGS or channels == 0:
                return None
        elif chunk == b"ds64" and size >= 28:
            rf64_data_size = struct.unpack_from("<Q", data, body + 8)[0]
        elif chunk == b"data":
            if block_align <= 0:
                return None
            present = len(data) - body
            declared = rf64_data_size if data[:4] == b"RF64" and rf64_data_size is not None else size
            available = present if declared in _UNKNOWN_SIZES else min(declared, present)
            return AudioLength(available // block_align, sample_rate)
        position = body + size + (size & 1)
    return None
