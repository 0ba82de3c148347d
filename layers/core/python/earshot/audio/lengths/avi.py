"""AVI: the audio chunks actually present in the ``movi`` lists, counted by what they decode to.

An AVI states its length several times over: the main header's frame count, each stream header's length, OpenDML's
``dmlh`` total, the ``idx1``/``indx`` indexes. All are headers; none is read here. ffmpeg's demuxer reads the
``movi`` list chunk by chunk (``avi_sync``): a chunk whose id names a stream is a packet, index and ``JUNK`` chunks
are skipped, ``LIST`` (``rec``, the ``movi`` of an OpenDML ``RIFF AVIX`` continuation) is entered, and anything else
(junk, a chunk whose size runs past the file) is scanned over byte by byte until the next chunk header. The walk here
follows the chunk chain the same way (in C, ``walkers.c``, where the library is built; else ``chains.chain`` and
``_next_header`` for the scan, in numpy) and counts the audio stream's chunks:

* PCM (integer 8-32 bit, float 32/64): each chunk's bytes present, in whole samples of every channel, as the PCM
  decoder decodes them (a cut last chunk counts the samples left in it).
* MP3: the chunks' payloads are one MPEG audio stream, which ffmpeg re-frames with its parser: one frame per chunk
  when each chunk is exactly one frame (as muxers write), else the payloads joined and walked with the MPEG audio
  walker (``mpeg_audio._walk``).

``identify_avi`` names a file only when ``hdrl`` describes exactly one audio stream (MP3 or PCM, its format
consistent) beside video streams only, and ``movi`` follows; anything else (other codecs, text or MIDI streams, DV,
two audio streams) goes to ffprobe.
"""

from __future__ import annotations

import mmap
import struct
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
from earshot.audio.lengths.common import AudioLength, Identified, pcm_sample_bytes
from earshot.audio.lengths.mpeg_audio import _WORD, _compiled_frame_sizes, _find_stream

_CHUNK_HEADER = 8
_MP3_TAG = 0x55
_EXTENSIBLE = 0xFFFE
_PCM_CODECS = {(1, 8): "pcm_u8", (1, 16): "pcm_s16le", (1, 24): "pcm_s24le", (1, 32): "pcm_s32le"}
_PCM_CODECS |= {(3, 32): "pcm_f32le", (3, 64): "pcm_f64le"}
_MAX_RATE = 768_000
_MAX_CHANNELS = 8
# How many chunks of ``movi`` identification reads for the first MP3 frames.
_IDENTIFY_CHUNKS = 64
_RESYNC_WINDOW = 64 * 1024


def _fourcc(name: bytes) -> int:
    return int(struct.unpack("<I", name)[0])


_LIST, _RIFF, _JUNK, _IDX1, _INDX = (_fourcc(name) for name in (b"LIST", b"RIFF", b"JUNK", b"idx1", b"indx"))


class _Layout:
    """What ``hdrl`` says: the audio stream's index and format, the video streams' indexes, where ``movi``'s chunks
    start, and the size ffmpeg believes the file has (its RIFF size when the file is shorter: a cut upload)."""

    def __init__(self, audio: int, tag: int, channels: int, rate: int, block_align: int, bits: int) -> None:
        self.audio, self.tag, self.channels, self.rate = audio, tag, channels, rate
        self.block_align, self.bits = block_align, bits
        self.video: list[int] = []
        self.movi = 0
        self.claimed_size = 0

    @property
    def codec(self) -> str | None:
        if self.tag == _MP3_TAG:
            return "mp3"
        codec = _PCM_CODECS.get((self.tag, self.bits))
        if codec is None or self.block_align != self.channels * self.bits // 8:
            return None
        return codec

    def known_ids(self) -> list[int]:
        """Chunk ids ``movi`` may hold: the audio stream's, the video streams', index chunks', ``JUNK``, lists."""
        ids = [_fourcc(b"%02dwb" % self.audio), _LIST, _RIFF, _JUNK, _IDX1, _INDX]
        for stream in (self.audio, *self.video):
            ids += [_fourcc(b"ix%02d" % stream), _fourcc(b"%02dix" % stream)]
        for stream in self.video:
            ids += [_fourcc(b"%02d%s" % (stream, suffix)) for suffix in (b"dc", b"db", b"pc")]
        return ids


def identify_avi(data: mmap.mmap) -> Identified | None:
    """A RIFF AVI with one MP3 or PCM audio stream beside video streams only; else ``None``."""
    layout = _layout(data)
    if layout is None or layout.codec is None:
        return None
    codec = layout.codec
    rate, channels = layout.rate, layout.channels
    if codec == "mp3":
        payload = _first_audio_payload(data, layout)
        found = _find_stream(cast(mmap.mmap, payload), 0, 4) if len(payload) >= 4 else None
        if found is None or found[0] != 0 or found[1].layer != 3:
            return None  # the first audio chunk must start with an MP3 frame (no junk, no other layer)
        header = _WORD.unpack_from(payload, 0)[0]
        rate, channels = found[1].rate, 1 if (header >> 6) & 3 == 3 else 2
    return Identified("avi", codec, rate, channels, has_video=bool(layout.video))


def _first_audio_payload(data: mmap.mmap, layout: _Layout) -> bytes:
    """The first audio chunks' payloads (up to 8 of them, among the first 64 chunks of ``movi``), joined."""
    audio_id = b"%02dwb" % layout.audio
    payloads: list[bytes] = []
    position = layout.movi
    for _ in range(_IDENTIFY_CHUNKS):
        if position + _CHUNK_HEADER > len(data) or len(payloads) == 8:
            break
        name, length = data[position : position + 4], struct.unpack_from("<I", data, position + 4)[0]
        if name in (b"LIST", b"RIFF"):
            position += 12
            continue
        if name == audio_id:
            payloads.append(bytes(data[position + 8 : position + 8 + length]))
        position += _CHUNK_HEADER + length + (length & 1)
    return b"".join(payloads)


def avi_length(data: mmap.mmap, codec: str, sample_rate: int) -> AudioLength | None:
    layout = _layout(data)
    if layout is None or layout.codec != codec:
        return None
    walkers = compiled.compiled_walkers()
    mp3 = walkers is not None and codec == "mp3"
    reference = expected_mp3_reference(_first_audio_payload(data, layout)) if mp3 else None
    if walkers is not None and reference is not None:  # the chunks read in C as the chain is walked
        sizes = _compiled_frame_sizes(reference)
        known = layout.known_ids()
        walked = walkers.avi_chunks(
            compiled.Mapped(data),
            start=layout.movi,
            claimed=layout.claimed_size,
            known=known,
            payloads=False,
            sizes=sizes,
        )
        if walked is None:
            return None
        if not walked.count:
            return AudioLength(0, sample_rate)
        assert walked.mpeg is not None
        checked = mp3_checked_samples(data, walked.count, walked.mpeg, reference)
        if checked is not None:  # one frame per chunk, as muxers write them
            samples, rate = checked
            return AudioLength(samples * sample_rate // rate, sample_rate, exact=True)
    chunks = _audio_chunks(data, layout, limit=len(data))
    if chunks is None:
        return None
    starts, lengths = chunks
    if codec == "mp3":
        counted = mp3_payload_samples(data, starts, lengths)
        if counted is None:
            return AudioLength(0, sample_rate)
        samples, rate = counted
        return AudioLength(samples * sample_rate // rate, sample_rate, exact=True)
    frame_bytes = pcm_sample_bytes(codec) * layout.channels
    if frame_bytes <= 0:
        return None
    return AudioLength(int((lengths // frame_bytes).sum()), sample_rate, exact=True)


def _layout(data: mmap.mmap) -> _Layout | None:
    """``hdrl`` read: exactly one ``auds`` stream (its ``strf`` a WAVEFORMATEX), any ``vids``, then ``movi``."""
    size = len(data)
    if size < 24 or data[:4] != b"RIFF" or data[8:12] != b"AVI " or data[12:16] != b"LIST" or data[20:24] != b"hdrl":
        return None
    hdrl_end = 20 + struct.unpack_from("<I", data, 16)[0]
    if hdrl_end > size:
        return None
    audio: _Layout | None = None
    video: list[int] = []
    streams = 0
    position = 24
    while position + 8 <= hdrl_end:
        name, length = data[position : position + 4], struct.unpack_from("<I", data, position + 4)[0]
        body, end = position + 8, position + 8 + length
        if end > hdrl_end:
            return None
        if name == b"LIST" and data[body : body + 4] == b"strl":
            kind, found = _stream(data, body + 4, end)
            if kind == b"auds":
                if audio is not None or found is None:
                    return None  # a second audio stream, or one we do not read
                audio = _Layout(streams, *found)
            elif kind == b"vids":
                video.append(streams)
            else:
                return None  # text, MIDI, DV (iavs) streams: ffprobe's
            streams += 1
        position = end + (length & 1)
    if audio is None or streams > 100:
        return None
    audio.video = video
    # The top-level chunks after hdrl: INFO lists, JUNK, then movi.
    position = hdrl_end + (hdrl_end & 1)
    while position + 12 <= size:
        name, length = data[position : position + 4], struct.unpack_from("<I", data, position + 4)[0]
        if name == b"LIST" and data[position + 8 : position + 12] == b"movi":
            audio.movi = position + 12
            riff_end = 8 + struct.unpack_from("<I", data, 4)[0]
            audio.claimed_size = size if size >= riff_end else riff_end
            return audio
        if name not in (b"LIST", b"JUNK"):
            return None
        position += 8 + length + (length & 1)
    return None


def _stream(data: mmap.mmap, position: int, end: int) -> tuple[bytes, tuple[int, int, int, int, int] | None]:
    """(``strh``'s stream type, the audio format (tag, channels, rate, block align, bits) of its ``strf``)."""
    kind = b""
    audio_format: tuple[int, int, int, int, int] | None = None
    while position + 8 <= end:
        name, length = data[position : position + 4], struct.unpack_from("<I", data, position + 4)[0]
        body = position + 8
        if body + length > end:
            return kind, None
        if name == b"strh" and length >= 4:
            kind = bytes(data[body : body + 4])
        elif name == b"strf" and kind == b"auds" and length >= 16:
            fields: tuple[int, ...] = struct.unpack_from("<HHIIHH", data, body)
            tag, channels, rate, _, block_align, bits = fields
            if tag == _EXTENSIBLE:
                if length < 40:
                    return kind, None
                tag = int(struct.unpack_from("<H", data, body + 24)[0])  # the sub-format GUID's first two bytes
            if 0 < rate <= _MAX_RATE and 1 <= channels <= _MAX_CHANNELS:
                audio_format = (tag, channels, rate, block_align, bits)
        position = body + length + (length & 1)
    return kind, audio_format


def _audio_chunks(
    data: mmap.mmap, layout: _Layout, *, limit: int, sequential: bool = False
) -> tuple[Offsets, Offsets] | None:
    """(payload offsets, payload bytes present) of the audio chunks in ``movi`` up to ``limit``, as ffmpeg reads
    them; ``None`` when the chunk chain runs into a second RIFF form that is not an AVIX continuation. Walked in C
    (``walkers.c``) where the library is built, else with numpy (``chains.chain``). ``sequential``: one chunk at a
    time (``chains.chain_sequentially``, the reference the tests hold both walks to)."""
    walkers = None if sequential or limit < len(data) else compiled.compiled_walkers()
    if walkers is not None:
        ids = layout.known_ids()  # the audio stream's id first
        walked = walkers.avi_chunks(compiled.Mapped(data), start=layout.movi, claimed=layout.claimed_size, known=ids)
        return None if walked is None else walked.payloads
    size = min(len(data), limit)
    read = Bytes(data)
    known = np.asarray(layout.known_ids(), dtype=np.int64)
    audio_word = _fourcc(b"%02dwb" % layout.audio)
    claimed = layout.claimed_size
    audio_id = b"%02dwb" % layout.audio

    def advance(at: Offsets) -> tuple[npt.NDArray[np.bool_], Offsets]:
        header = read.little(at)
        name = (header & np.uint64(0xFFFFFFFF)).astype(np.int64)
        length = (header >> np.uint64(32)).astype(np.int64)
        entered = (name == _LIST) | (name == _RIFF)
        following: Offsets = np.where(entered, at + 12, at + _CHUNK_HEADER + length + (length & 1))
        # ffmpeg takes a header only where its size fits in the file (the RIFF size, when the file is shorter)
        fits = (at + 7 + length <= claimed) | (name == _RIFF)
        ours = name == audio_word
        if not ours.all():  # the rare other chunk: checked against the whole list
            others = ~ours
            ours[others] = np.isin(name[others], known)
        return ours & fits, following

    def anchor(begin: int, stop: int) -> int | None:
        # Unverified: a walker started on a false chunk is not joined to the chain (``chains``).
        found = data.find(audio_id, begin, stop + 4)
        return found if found >= 0 else None

    parts: list[Offsets] = []
    position = layout.movi
    while position + _CHUNK_HEADER <= size:
        if sequential:
            nodes, stop = chain_sequentially(size, position, header=_CHUNK_HEADER, advance=advance)
        else:
            hint = _index_hint(data, layout) if position == layout.movi else None
            nodes, stop = chain(size, position, header=_CHUNK_HEADER, advance=advance, anchor=anchor, hint=hint)
        parts.append(nodes)
        if stop + _CHUNK_HEADER > size:
            break
        found = _next_header(read, known, claimed, stop + 1, size - _CHUNK_HEADER + 1)
        if found is None:
            break
        position = found
    chunks = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    headers = read.little(chunks)
    names = (headers & np.uint64(0xFFFFFFFF)).astype(np.int64)
    riffs = chunks[names == _RIFF]
    if riffs.size and ((read.little(riffs + 8) & np.uint64(0xFFFFFFFF)) != _fourcc(b"AVIX")).any():
        return None
    ours = names == _fourcc(b"%02dwb" % layout.audio)
    audio = chunks[ours]
    starts = audio + _CHUNK_HEADER
    lengths = np.minimum((headers[ours] >> np.uint64(32)).astype(np.int64), len(data) - starts)
    keep = lengths > 0
    return starts[keep], lengths[keep]


def _index_hint(data: mmap.mmap, layout: _Layout) -> Offsets | None:
    """Where the ``idx1`` index says the chunks of ``movi`` are, in order (``chains.chain`` checks each against the
    chunk it finds there: the index only spares the walk, it never says what the file holds); ``None`` without one."""
    movi_list = layout.movi - 12
    position = movi_list + 8 + struct.unpack_from("<I", data, movi_list + 4)[0]
    position += position & 1
    if position + 8 > len(data) or data[position : position + 4] != b"idx1":
        return None
    count = min(struct.unpack_from("<I", data, position + 4)[0], len(data) - position - 8) // 16
    if count == 0:
        return None
    entries = np.frombuffer(data, dtype="<u4", count=count * 4, offset=position + 8).reshape(count, 4)
    offsets = entries[:, 2].astype(np.int64)
    for base in (layout.movi - 4, 0):  # offsets from the "movi" fourcc (usual) or from the file's start
        if int(offsets[0]) + base == layout.movi:
            hint: Offsets = offsets + base
            return hint
    return None


def _next_header(read: Bytes, known: npt.NDArray[np.int64], claimed: int, begin: int, stop: int) -> int | None:
    """The first offset in [begin, stop) holding a chunk header ffmpeg's byte scan takes (a known id, a size that
    fits); ``None`` if there is none."""
    while begin < stop:
        at = np.arange(begin, min(begin + _RESYNC_WINDOW, stop), dtype=np.int64)
        headers = read.little(at)
        names = (headers & np.uint64(0xFFFFFFFF)).astype(np.int64)
        hits = np.flatnonzero(np.isin(names, known))
        if hits.size:
            lengths = (headers[hits] >> np.uint64(32)).astype(np.int64)
            fits = (at[hits] + 7 + lengths <= claimed) | (names[hits] == _RIFF)
            if fits.any():
                return int(at[hits[np.argmax(fits)]])
        begin += _RESYNC_WINDOW
    return None
