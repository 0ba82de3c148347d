"""AIFF/AIFC, Sun AU and Sony Wave64 holding PCM: the whole sample frames of the data that is present.

As for WAV (``riff``), the samples are the data's bytes, and the headers that state a length are believed only to
end the data early, where the demuxer stops too: AIFF's ``SSND`` and Wave64's ``data`` chunk sizes (ffmpeg stops
reading at their end). AIFF's ``numSampleFrames`` is never read. AU's data size is ignored by ffmpeg's demuxer
(it reads to the end of the file), so it is here; a file whose AU size claims more than the file holds goes to
ffprobe. Each ``identify_*`` answers only for plain PCM (and G.711 in AU) with its parameters in range.
"""

from __future__ import annotations

import mmap
import struct

from earshot.audio.lengths.common import AudioLength, Identified, pcm_sample_bytes

_MAX_RATE = 768_000
_MAX_CHANNELS = 8
# AU encodings ffmpeg's demuxer maps to plain codecs.
_AU_CODECS = {1: "pcm_mulaw", 2: "pcm_s8", 3: "pcm_s16be", 4: "pcm_s24be", 5: "pcm_s32be", 6: "pcm_f32be"}
_AU_CODECS |= {7: "pcm_f64be", 27: "pcm_alaw"}
_AU_UNKNOWN_SIZE = 0xFFFFFFFF
# AIFF sample sizes, and the AIFC compression types that are plain PCM.
_AIFF_CODECS = {8: "pcm_s8", 16: "pcm_s16be", 24: "pcm_s24be", 32: "pcm_s32be"}
_AIFC_CODECS = {b"sowt": {16: "pcm_s16le"}, b"fl32": {32: "pcm_f32be"}, b"FL32": {32: "pcm_f32be"}}
_AIFC_CODECS |= {b"fl64": {64: "pcm_f64be"}, b"FL64": {64: "pcm_f64be"}}
# Wave64 chunk GUIDs: a four-character code followed by the same twelve bytes (the riff one differs).
_W64_RIFF = b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00"
_W64_SUFFIX = b"\xf3\xac\xd3\x11\x8c\xd1\x00\xc0\x4f\x8e\xdb\x8a"
_W64_WAVE, _W64_FMT, _W64_DATA = b"wave" + _W64_SUFFIX, b"fmt " + _W64_SUFFIX, b"data" + _W64_SUFFIX
_WAV_PCM = {(1, 8): "pcm_u8", (1, 16): "pcm_s16le", (1, 24): "pcm_s24le", (1, 32): "pcm_s32le"}
_WAV_PCM |= {(3, 32): "pcm_f32le", (3, 64): "pcm_f64le"}


class _Pcm:
    """A PCM stream's codec, rate, channels, and the bytes of its data a decoder reads."""

    def __init__(self, format_name: str, codec: str, rate: int, channels: int, data_bytes: int) -> None:
        self.identified = Identified(format_name, codec, rate, channels)
        self.frame_bytes = pcm_sample_bytes(codec) * channels
        self.data_bytes = data_bytes

    @property
    def valid(self) -> bool:
        found = self.identified
        return 0 < found.sample_rate <= _MAX_RATE and 1 <= found.channels <= _MAX_CHANNELS and self.frame_bytes > 0


def _parsed(data: mmap.mmap) -> _Pcm | None:
    head = data[:16]
    if head[:4] == b".snd":
        found = _au(data)
    elif head[:4] == b"FORM" and data[8:12] in (b"AIFF", b"AIFC"):
        found = _aiff(data)
    elif head == _W64_RIFF:
        found = _w64(data)
    else:
        return None
    return found if found is not None and found.valid else None


def identify_pcm_container(data: mmap.mmap) -> Identified | None:
    """An AU, AIFF/AIFC or Wave64 file of plain PCM whose header parses, else ``None``."""
    found = _parsed(data)
    return found.identified if found is not None else None


def pcm_container_length(data: mmap.mmap, codec: str, sample_rate: int) -> AudioLength | None:
    """Whole sample frames of the data present (no more than a chunk size says where the demuxer stops)."""
    found = _parsed(data)
    if found is None or found.identified.codec != codec:
        return None
    return AudioLength(found.data_bytes // found.frame_bytes, sample_rate)


def _au(data: mmap.mmap) -> _Pcm | None:
    if len(data) < 24:
        return None
    offset, size, encoding, rate, channels = struct.unpack_from(">IIIII", data, 4)
    codec = _AU_CODECS.get(encoding)
    if codec is None or offset < 24 or offset > len(data):
        return None
    present = len(data) - offset
    if size != _AU_UNKNOWN_SIZE and size > present:
        return None  # a cut file or a claim: ffprobe decides (ffmpeg refuses some sizes outright)
    return _Pcm("au", codec, rate, channels, present)


def _aiff(data: mmap.mmap) -> _Pcm | None:
    aifc = data[8:12] == b"AIFC"
    position = 12
    common: tuple[str, int, int] | None = None
    while position + 8 <= len(data):
        chunk, size = data[position : position + 4], struct.unpack_from(">I", data, position + 4)[0]
        body = position + 8
        if chunk == b"COMM":
            if size < (22 if aifc else 18) or body + size > len(data):
                return None
            channels, _frames, bits = struct.unpack_from(">hIh", data, body)
            rate = _extended(bytes(data[body + 8 : body + 18]))
            kind = bytes(data[body + 18 : body + 22]) if aifc else b"NONE"
            codec = (_AIFF_CODECS if kind in (b"NONE", b"twos") else _AIFC_CODECS.get(kind, {})).get(bits)
            if codec is None or rate is None:
                return None
            common = (codec, rate, channels)
        elif chunk == b"SSND":
            if common is None or size < 8 or body + 8 > len(data):
                return None  # sound before its format: ffprobe decides
            offset = struct.unpack_from(">I", data, body)[0]
            start = body + 8 + offset
            end = min(len(data), body + size) if size else len(data)
            return _Pcm("aiff", *common, max(0, end - start))
        position = body + size + (size & 1)
    return None


def _extended(value: bytes) -> int | None:
    """An 80-bit IEEE extended float holding a whole sample rate, else ``None``."""
    exponent: int = struct.unpack_from(">H", value)[0]
    mantissa: int = struct.unpack_from(">Q", value, 2)[0]
    shift = 16383 + 63 - (exponent & 0x7FFF)
    if exponent & 0x8000 or not 0 <= shift < 64 or mantissa & ((1 << shift) - 1):
        return None
    return mantissa >> shift


def _w64(data: mmap.mmap) -> _Pcm | None:
    if len(data) < 40 or data[24:40] != _W64_WAVE:
        return None
    position = 40
    common: tuple[str, int, int] | None = None
    while position + 24 <= len(data):
        guid, size = data[position : position + 16], struct.unpack_from("<Q", data, position + 16)[0]
        body = position + 24
        if size < 24:
            return None
        if guid == _W64_FMT:
            if size < 24 + 16 or body + 16 > len(data):
                return None
            tag, channels, rate, byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", data, body)
            codec = _WAV_PCM.get((tag, bits))
            if codec is None or block_align != channels * bits // 8 or byte_rate != rate * block_align:
                return None
            common = (codec, rate, channels)
        elif guid == _W64_DATA:
            if common is None:
                return None
            return _Pcm("w64", *common, max(0, min(len(data), position + size) - body))
        position += (size + 7) // 8 * 8
    return None
