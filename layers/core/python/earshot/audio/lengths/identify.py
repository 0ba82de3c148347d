"""What a file is, read in-process for the containers the walkers read, so that metering them starts no ffprobe.

ffprobe's process start costs more than reading a minute of audio (4-7 ms on a quiet machine, 10-20 under load).
For WAV, AIFF, AU and Wave64 (PCM), native FLAC, MPEG audio, raw ADTS AAC-LC, AC-3, E-AC-3 and AMR, single-stream Ogg
(Opus, Vorbis), MP4/M4A/MOV with one AAC-LC track (and any video tracks beside it), mono/stereo WavPack and
single-track Matroska/WebM (Opus, Vorbis, ALAC, WavPack) the container's own header names the codec,
rate and channels, and the frame walk that measures the length reads (and checks) the frames anyway. ``identify``
answers only when every one of these holds; otherwise ``None``, and ffprobe decides exactly as before:

* the file starts with the container's signature (no leading junk, no ID3 before FLAC, no second Ogg stream);
* the codec is one of a fixed list (PCM integer/float, FLAC, MPEG audio layer I-III, Opus, Vorbis, AAC-LC, ALAC,
  WavPack) and its
  header fields are in range (rate 2 kHz-768 kHz... the caller still refuses rates below ``MIN_SAMPLE_RATE``);
* the first frames parse: FLAC's first frame header passes its CRC-8, MPEG audio's first three frames chain,
  Ogg's first page holds the codec's identification packet whole;
* MP4 holds exactly one audio track and otherwise only video tracks, Matroska exactly one track, an audio one, and
  nothing but a short list of known boxes/elements around them: no second audio track, no text track, no fragments,
  no media in another file, no content encodings (``identify_mp4``, ``identify_matroska``).

* CAF describes ALAC, FLAC, IMA4, G.711 or PCM first thing, with the tables its codec needs (``identify_caf``);
* MPEG transport and program streams hold one audio stream (AAC in ADTS, MPEG audio) beside video streams only, in
  plain packets (``identify_mpegts``, ``identify_mpeg_ps``).
* FLV holds one AAC-LC or MP3 audio stream in tags that chain (``identify_flv``); AVI one MP3 or PCM stream beside
  video streams only (``identify_avi``); ASF one WMA v1/v2 stream without the bit reservoir, and nothing else
  (``identify_asf``).

No name, URL or protocol is ever opened: only the bytes of the staged local file. Anything else (playlists, every
container these checks doubt) goes to ffprobe.
"""

from __future__ import annotations

import mmap
import struct

from earshot.audio.lengths.common import Identified
from earshot.audio.lengths.flac import _audio_start, _parse_frame
from earshot.audio.lengths.mpeg_audio import _WORD, _id3v2_end, _size_index, _Stream, _valid_header

_MAX_RATE = 768_000
_MAX_CHANNELS = 8
_PCM_CODECS = {(1, 8): "pcm_u8", (1, 16): "pcm_s16le", (1, 24): "pcm_s24le", (1, 32): "pcm_s32le"}
_PCM_CODECS |= {(3, 32): "pcm_f32le", (3, 64): "pcm_f64le"}
_EXTENSIBLE = 0xFFFE
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
# MPEG audio: this many consecutive frames (fewer only if the file ends) before the file is called MPEG audio.
_MPEG_FRAMES = 3


def identify(data: mmap.mmap) -> Identified | None:
    """The file's container and codec when it is one of those read here and parses cleanly, else ``None``."""
    head = data[:12]
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return _wav(data)
    if head[:4] == b"fLaC":
        return _flac(data)
    if head[:4] == b"OggS":
        return _ogg(data)
    if head[:4] in (b".snd", b"FORM") or head[:4] == b"riff":
        from earshot.audio.lengths.pcm_containers import identify_pcm_container

        return identify_pcm_container(data)
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF) or head[:2] == b"\x0b\x77":
        found = _mpeg_audio(data) if head[:2] != b"\x0b\x77" else None
        if found is not None:
            return found
        from earshot.audio.lengths.elementary import identify_elementary  # ADTS AAC, AC-3, E-AC-3

        return identify_elementary(data)
    # Imported here: these modules need numpy, which the light functions' layer does not carry.
    if head[4:8] == b"ftyp":
        from earshot.audio.lengths.mp4 import identify_mp4

        return identify_mp4(data)
    if head[:5] == b"#!AMR":
        from earshot.audio.lengths.amr import identify_amr

        return identify_amr(data)
    if head[:4] == b"wvpk":
        from earshot.audio.lengths.wavpack import identify_wavpack

        return identify_wavpack(data)
    if head[:4] == _EBML_MAGIC:
        from earshot.audio.lengths.matroska import identify_matroska

        return identify_matroska(data)
    if head[:4] == b"caff":
        from earshot.audio.lengths.caf import identify_caf

        return identify_caf(data)
    if head[:4] == b"\x00\x00\x01\xba":
        from earshot.audio.lengths.mpeg_streams import identify_mpeg_ps

        return identify_mpeg_ps(data)
    if head[:3] == b"FLV":
        from earshot.audio.lengths.flv import identify_flv

        return identify_flv(data)
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        from earshot.audio.lengths.avi import identify_avi

        return identify_avi(data)
    if head[:8] == b"\x30\x26\xb2\x75\x8e\x66\xcf\x11":
        from earshot.audio.lengths.asf import identify_asf

        return identify_asf(data)
    if head[:1] == b"\x47":
        from earshot.audio.lengths.mpeg_streams import identify_mpegts

        return identify_mpegts(data)
    return None


def _in_range(rate: int, channels: int) -> bool:
    return 0 < rate <= _MAX_RATE and 1 <= channels <= _MAX_CHANNELS


def _wav(data: mmap.mmap) -> Identified | None:
    position = 12
    while position + 8 <= len(data):
        chunk, size = data[position : position + 4], struct.unpack_from("<I", data, position + 4)[0]
        body = position + 8
        if chunk == b"fmt ":
            if size < 16 or body + size > len(data):
                return None
            tag, channels, rate, byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == _EXTENSIBLE:
                if size < 40:
                    return None
                tag = struct.unpack_from("<H", data, body + 24)[0]  # the sub-format GUID's first two bytes
            codec = _PCM_CODECS.get((tag, bits))
            if codec is None or not _in_range(rate, channels):
                return None
            if block_align != channels * bits // 8 or byte_rate != rate * block_align:
                return None
            return Identified("wav", codec, rate, channels)
        if chunk == b"data":
            return None  # audio before its format: ffprobe decides
        position = body + size + (size & 1)
    return None


def _flac(data: mmap.mmap) -> Identified | None:
    if len(data) < 42 or data[4] & 0x7F != 0 or int.from_bytes(data[5:8], "big") != 34:
        return None  # the first metadata block must be a 34-byte STREAMINFO
    info = int.from_bytes(data[18:26], "big")  # rate (20 bits), channels - 1 (3), bits - 1 (5), samples (36)
    rate, channels, bits = info >> 44, ((info >> 41) & 7) + 1, ((info >> 36) & 31) + 1
    min_block, max_block = int.from_bytes(data[8:10], "big"), int.from_bytes(data[10:12], "big")
    if not _in_range(rate, channels) or bits < 4 or min_block < 16 or max_block < min_block:
        return None
    start = _audio_start(data)
    if start is None or start >= len(data) or data[start] != 0xFF or data[start + 1] not in (0xF8, 0xF9):
        return None
    if _parse_frame(data, start) is None:  # the first frame header and its CRC-8
        return None
    return Identified("flac", "flac", rate, channels)


def _mpeg_audio(data: mmap.mmap) -> Identified | None:
    position = _id3v2_end(data)
    size = len(data)
    if position + 4 > size:
        return None
    header = _WORD.unpack_from(data, position)[0]
    if not _valid_header(header):
        return None  # frames must start right after the tags: no junk skipped here (ffprobe's probe would)
    stream = _Stream(header)
    for _ in range(_MPEG_FRAMES):
        length = stream.sizes[_size_index(header)]
        position += length
        if position + 4 > size:
            if position > size + length:
                return None
            break  # the file ends: a short file of fewer frames
        header = _WORD.unpack_from(data, position)[0]
        if not _valid_header(header) or header & 0xFFFE0C00 != stream.reference:
            return None
    codec = {1: "mp1", 2: "mp2", 3: "mp3"}[stream.layer]
    channels = 1 if (_WORD.unpack_from(data, _id3v2_end(data))[0] >> 6) & 3 == 3 else 2
    return Identified("mp3", codec, stream.rate, channels)


def _ogg(data: mmap.mmap) -> Identified | None:
    if len(data) < 27 or data[4] != 0 or not data[5] & 0x02:
        return None  # version 0, and the first page opens a stream
    segments = data[26]
    lacing = data[27 : 27 + segments]
    if len(lacing) < 1 or lacing[0] == 255:
        return None  # the identification packet fits in one segment
    first = 27 + segments
    packet = data[first : first + lacing[0]]
    following = first + sum(lacing)
    if data[following : following + 4] == b"OggS" and len(data) > following + 5 and data[following + 5] & 0x02:
        return None  # a second stream starts: multiplexed Ogg is for ffprobe
    if packet[:8] == b"OpusHead" and len(packet) >= 19 and packet[8] & 0xF0 == 0:
        channels = packet[9]
        return Identified("ogg", "opus", 48000, channels) if 1 <= channels <= _MAX_CHANNELS else None
    if packet[:7] == b"\x01vorbis" and len(packet) >= 30 and packet[7:11] == b"\0\0\0\0":
        channels, rate = packet[11], struct.unpack_from("<I", packet, 12)[0]
        return Identified("ogg", "vorbis", rate, channels) if _in_range(rate, channels) and packet[29] & 1 else None
    return None
