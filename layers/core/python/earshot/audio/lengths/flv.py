"""FLV: the audio tags actually present, counted by what each decodes to; ``onMetaData``'s duration is never read.

An FLV file is a chain of tags (audio, video, script data), each stating its payload size and followed by its own
size again (``PreviousTagSize``). ffmpeg's demuxer follows the chain and checks every tag against the size after it:
a tag whose trailing size disagrees (junk, a damaged tag) is dropped and the demuxer resyncs on the first two
consecutive tags that agree with theirs. The walk here does the same (in C, ``walkers.c``, where the library is
built; else ``chains.chain`` for the chain and ``_resync`` for ffmpeg's rule, in numpy) and counts the audio tags it
keeps that lie wholly in the file:

* AAC (AAC-LC, as the sequence header's AudioSpecificConfig states): every raw frame tag decodes to 1024 samples;
  the sequence header is not audio.
* MP3: the tags' payloads are one MPEG audio stream (ffmpeg re-frames it with its parser). When every tag holds
  exactly one whole frame of the stream (what muxers write) the tags are the frames; otherwise the payloads are
  joined and walked with the MPEG audio walker (``mpeg_audio._walk``), so a tag holding half a frame or junk counts
  what decodes, not one frame per tag.

Timestamps, the script tag's ``duration`` and ``filesize`` are headers: not read. A tag cut by the end of the file is
not billed (ffmpeg hands its part to the decoder, which may make one more frame of it: the bill is then one frame
short, never long). ``identify_flv`` names a file only when it opens with the FLV header, its first tags chain, and
its audio is one AAC-LC or MP3 stream; anything else (encrypted tags, Speex, Nellymoser, ADPCM, PCM, an audio codec
that changes, HE-AAC) goes to ffprobe.
"""

from __future__ import annotations

import mmap
from typing import cast

import numpy as np
import numpy.typing as npt

from earshot.audio.lengths import compiled
from earshot.audio.lengths.chains import (
    Bytes,
    Offsets,
    chain,
    chain_sequentially,
    expected_mp3_reference,
    mp3_checked_samples,
    mp3_payload_samples,
)
from earshot.audio.lengths.common import AudioLength, Identified
from earshot.audio.lengths.mpeg_audio import _WORD, _compiled_frame_sizes, _find_stream

_TAG_HEADER = 11
_TAG_TRAILER = 4  # PreviousTagSize
_AUDIO, _VIDEO, _SCRIPT = 8, 9, 18
_AAC, _MP3, _MP3_8K = 10, 2, 14
_AAC_FRAME = 1024
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
_AAC_LC = 2
# The AudioSpecificConfig extension that says "no SBR" (sync 0x2b7, object type 5, flag 0), as ffmpeg writes it.
_SBR_SYNC = 0x2B7
# How far into the file identification reads tags.
_IDENTIFY_BYTES = 256 * 1024
_IDENTIFY_TAGS = 64
# ffmpeg's resync looks back over this many bytes: two consecutive tags that agree, together within it.
_RESYNC_BUFFER = 1 << 20
_RESYNC_WINDOW = 64 * 1024


def identify_flv(data: mmap.mmap) -> Identified | None:
    """An FLV whose first tags chain, with one AAC-LC (sequence header first) or MP3 audio stream; else ``None``."""
    start = _first_tag(data)
    if start is None:
        return None
    position, size = start, len(data)
    limit = min(size, _IDENTIFY_BYTES)
    codec_id: int | None = None
    config: tuple[int, int] | None = None
    mp3_payload: list[bytes] = []
    has_video = False
    for _ in range(_IDENTIFY_TAGS):
        if position + _TAG_HEADER > limit:
            break
        kind, length = data[position], int.from_bytes(data[position + 1 : position + 4], "big")
        end = position + _TAG_HEADER + length
        if end + _TAG_TRAILER > size:
            break  # the last tag (a short file, or one cut here): the walk decides what it holds
        if int.from_bytes(data[end : end + 4], "big") != length + _TAG_HEADER:
            return None  # a tag that does not chain: ffprobe's to make sense of
        if data[position + 8 : position + 11] != b"\0\0\0":
            return None  # a stream id other than 0
        if kind == _VIDEO:
            has_video = True
        elif kind == _AUDIO and length >= 2:
            flags = data[position + _TAG_HEADER]
            if codec_id is None:
                codec_id = flags >> 4
                if codec_id == _AAC:
                    if data[position + 12] != 0:
                        return None  # AAC frames before their configuration
                    config = _aac_config(bytes(data[position + 13 : end]))
                    if config is None:
                        return None
                elif codec_id not in (_MP3, _MP3_8K):
                    return None
            elif flags >> 4 != codec_id:
                return None  # a second audio codec: a second stream in ffmpeg
            if codec_id != _AAC and len(mp3_payload) < 8:
                mp3_payload.append(bytes(data[position + 12 : end]))
        elif kind != _SCRIPT:
            return None  # encrypted or unknown tags
        position = end + _TAG_TRAILER
    if codec_id == _AAC and config is not None:
        return Identified("flv", "aac", config[0], config[1], has_video=has_video)
    if codec_id in (_MP3, _MP3_8K) and mp3_payload:
        first = _first_mp3_frame(b"".join(mp3_payload))
        if first is not None:
            return Identified("flv", "mp3", first[0], first[1], has_video=has_video)
    return None


def flv_length(data: mmap.mmap, codec: str, sample_rate: int) -> AudioLength | None:
    start = _first_tag(data)
    if start is None or codec not in ("aac", "mp3"):
        return None
    wanted = (_AAC,) if codec == "aac" else (_MP3, _MP3_8K)
    walkers = compiled.compiled_walkers()
    if walkers is not None:  # the same records, read in C as the chain is walked
        mapped = compiled.Mapped(data)
        reference = _expected_mp3_reference(data, start) if codec == "mp3" else None
        sizes = None if reference is None else _compiled_frame_sizes(reference)
        audio = walkers.flv_audio(mapped, start=start, payloads=False, sizes=sizes)
        if not audio.records:
            return AudioLength(0, sample_rate)
        if audio.codec not in wanted or audio.mixed:
            return None  # another audio codec: another stream, ffprobe's to choose
        if codec == "aac":
            return AudioLength(audio.aac_frames * _AAC_FRAME, sample_rate)
        if audio.mpeg is not None and reference is not None:
            checked = mp3_checked_samples(data, audio.records, audio.mpeg, reference)
            if checked is not None:  # one frame per tag, as muxers write them
                return _mp3_length(checked, sample_rate)
        payloads = walkers.flv_audio(mapped, start=start, payloads=True).payloads
        assert payloads is not None
        return _mp3_length(mp3_payload_samples(data, *payloads), sample_rate)
    size = len(data)
    buffer = np.frombuffer(data, dtype=np.uint8)
    tags = _tags(data, start)
    tags = tags[buffer[tags] == _AUDIO]
    lengths = _uint(buffer, tags + 1, 3)
    whole = (tags + _TAG_HEADER + lengths <= size) & (lengths >= 2)
    tags, lengths = tags[whole], lengths[whole]
    if not tags.size:
        return AudioLength(0, sample_rate)
    codec_ids = buffer[tags + _TAG_HEADER] >> 4
    if int(codec_ids[0]) not in wanted or (codec_ids != codec_ids[0]).any():
        return None  # another audio codec: another stream, ffprobe's to choose
    if codec == "aac":
        frames = int(np.count_nonzero((buffer[tags + 12] == 1) & (lengths >= 3)))
        return AudioLength(frames * _AAC_FRAME, sample_rate)
    return _mp3_length(mp3_payload_samples(data, tags + 12, lengths - 1), sample_rate)


def _mp3_length(counted: tuple[int, int] | None, sample_rate: int) -> AudioLength:
    if counted is None:
        return AudioLength(0, sample_rate)
    samples, rate = counted
    return AudioLength(samples * sample_rate // rate, sample_rate)


def _expected_mp3_reference(data: mmap.mmap, start: int) -> int | None:
    """The MPEG audio stream the first audio tag's payload opens: what the compiled walk tests every tag against. A
    guess: ``chains.mp3_checked_samples`` confirms it."""
    first = _first_audio_tag(data, start)
    return None if first is None else expected_mp3_reference(bytes(data[first + 12 : first + 16]))


def _first_audio_tag(data: mmap.mmap, start: int) -> int | None:
    """The first audio tag with a payload among the first 64 tags from ``start`` (followed by their sizes alone)."""
    position = start
    for _ in range(64):
        if position + _TAG_HEADER + 2 > len(data):
            return None
        length = int.from_bytes(data[position + 1 : position + 4], "big")
        if data[position] == _AUDIO and length >= 2:
            return position
        position += _TAG_HEADER + length + _TAG_TRAILER
    return None


def _first_tag(data: mmap.mmap) -> int | None:
    """Where the first tag starts, if the file opens with a plain FLV header (version 1, 9 bytes, no previous tag)."""
    if len(data) < 13 or data[:3] != b"FLV" or data[3] != 1 or data[4] & 0xFA:
        return None
    if int.from_bytes(data[5:9], "big") != 9 or data[9:13] != b"\0\0\0\0":
        return None
    return 13


def _uint(buffer: npt.NDArray[np.uint8], at: Offsets, count: int) -> Offsets:
    """The big-endian unsigned integers of ``count`` bytes at each offset."""
    value: Offsets = buffer[at].astype(np.int64)
    for index in range(1, count):
        value = (value << 8) | buffer[at + index]
    return value


def _tags(data: mmap.mmap, start: int, *, sequential: bool = False) -> Offsets:
    """Offsets of the tags ffmpeg's demuxer keeps: the chain from ``start``, resynced after a tag that disagrees;
    walked in C (``walkers.c``) where the library is built, else with numpy (``chains.chain``).
    ``sequential``: one tag at a time (``chains.chain_sequentially``, the reference the tests hold both walks to)."""
    walkers = None if sequential else compiled.compiled_walkers()
    if walkers is not None:
        return walkers.flv_tags(compiled.Mapped(data), start=start)
    size = len(data)
    buffer = np.frombuffer(data, dtype=np.uint8)
    signature = _audio_signature(data, start)

    read = Bytes(data)

    last_word = size - _TAG_TRAILER

    def advance(at: Offsets) -> tuple[npt.NDArray[np.bool_], Offsets]:
        length = ((read.big(at) >> np.uint64(32)) & np.uint64(0xFFFFFF)).astype(np.int64)
        end = at + _TAG_HEADER + length
        excess = (read.big(np.minimum(end, last_word)) >> np.uint64(32)).astype(np.int64) - length
        # The file ends in or after the tag: the demuxer stops there without checking.
        agrees = (end > last_word) | (excess == 11) | (excess == 10) | ((excess == 0) & (length > 0))
        return agrees, end + _TAG_TRAILER

    def anchor(begin: int, stop: int) -> int | None:
        # Unverified: a walker started on a false tag is not joined to the chain (``chains``).
        found = -1 if signature is None else data.find(signature, begin + 8, stop + 8 + len(signature))
        return found - 8 if found >= 0 else None

    parts: list[Offsets] = []
    position = start
    while position + _TAG_HEADER <= size:
        if sequential:
            nodes, stop = chain_sequentially(size, position, header=_TAG_HEADER, advance=advance)
        else:
            nodes, stop = chain(size, position, header=_TAG_HEADER, advance=advance, anchor=anchor)
        parts.append(nodes)
        if stop + _TAG_HEADER > size:
            break
        position = _resync(buffer, size, stop + 1)  # the tag at ``stop`` disagrees with its trailing size
        if position < 0:
            break
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _audio_signature(data: mmap.mmap, start: int) -> bytes | None:
    """The bytes every audio tag of the stream has from its stream id on (stream id 0, the audio flags byte, and the
    AAC packet type or the MP3 frame sync), from the first audio tag in the first 64 tags: what walkers look for."""
    first = _first_audio_tag(data, start)
    if first is None:
        return None
    flags = data[first + _TAG_HEADER]
    return b"\0\0\0" + bytes([flags, 1 if flags >> 4 == _AAC else 0xFF])


def _resync(buffer: npt.NDArray[np.uint8], size: int, position: int) -> int:
    """ffmpeg's ``resync``: the first offset from ``position`` where two consecutive tags each agree with their
    trailing size (together within its 1 MiB look-back), or -1."""
    last = size - (_TAG_HEADER + _TAG_TRAILER)
    while position <= last:
        at = np.arange(position, min(position + _RESYNC_WINDOW, last + 1), dtype=np.int64)
        first = _uint(buffer, at + 1, 3)
        second_at = at + _TAG_HEADER + first + _TAG_TRAILER
        ok = second_at <= last
        ok[ok] = _uint(buffer, second_at[ok] - _TAG_TRAILER, 4) == first[ok] + _TAG_HEADER
        candidates = np.flatnonzero(ok)
        if candidates.size:
            second_at = second_at[candidates]
            second = _uint(buffer, second_at + 1, 3)
            end = second_at + _TAG_HEADER + second
            fits = end + _TAG_TRAILER <= size
            fits &= first[candidates] + second + 2 * _TAG_HEADER + 8 < _RESYNC_BUFFER
            fits[fits] = _uint(buffer, end[fits], 4) == second[fits] + _TAG_HEADER
            hits = candidates[fits]
            if hits.size:
                return int(at[hits[0]])
        position += _RESYNC_WINDOW
    return -1


def _aac_config(config: bytes) -> tuple[int, int] | None:
    """(rate, channels) of an AAC-LC AudioSpecificConfig with 1024-sample frames and no SBR; else ``None``."""
    if len(config) < 2:
        return None
    bits = int.from_bytes(config[:2], "big")
    object_type, rate_index, channels = bits >> 11, (bits >> 7) & 0x0F, (bits >> 3) & 0x0F
    frame_length_flag, depends_on_core, extension = (bits >> 2) & 1, (bits >> 1) & 1, bits & 1
    if object_type != _AAC_LC or rate_index >= len(_AAC_RATES) or not 1 <= channels <= 6:
        return None
    if frame_length_flag or depends_on_core or extension:
        return None  # 960-sample frames, a core coder: not what the count assumes
    rest = config[2:]
    if rest.strip(b"\0"):
        if len(rest) < 3:
            return None
        tail = int.from_bytes(rest[:3], "big")  # sync (11 bits), object type (5), SBR present (1)
        if tail >> 13 != _SBR_SYNC or (tail >> 8) & 0x1F != 5 or (tail >> 7) & 1 or rest[3:].strip(b"\0"):
            return None
    return _AAC_RATES[rate_index], channels


def _first_mp3_frame(payload: bytes) -> tuple[int, int] | None:
    """(rate, channels) of the MPEG audio layer III stream the payload starts with (no junk before it)."""
    if len(payload) < 4:
        return None
    found = _find_stream(cast(mmap.mmap, payload), 0, 4)
    if found is None or found[0] != 0 or found[1].layer != 3:
        return None
    header = _WORD.unpack_from(payload, 0)[0]
    return found[1].rate, 1 if (header >> 6) & 3 == 3 else 2
