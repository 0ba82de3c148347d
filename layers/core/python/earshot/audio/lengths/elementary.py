"""Raw elementary streams: ADTS AAC (``.aac``), AC-3 and E-AC-3 (``.ac3``, ``.eac3``): the chain of complete frames.

These files have no length header at all: each frame header says its own size and how many samples it decodes
to, and the frames chain from the first to the last. The bill is the samples of the complete frames that chain
from the first one (after ID3v2 tags), exact to one frame, as ffmpeg decodes them (there is no priming
information to trim). A frame cut short, junk or another stream ends the chain: the engine is fed no more than
that. Variants these walkers do not read (an ADTS frame of several raw data blocks, a PCE instead of a channel
configuration) are left to ffprobe.

The chain is walked frame by frame in C (``walkers.c``, ``earshot_elementary_frames``) where the compiled walkers are
built. Without them the frames are found without a Python step per frame: every offset that starts like the first
frame's header is a candidate; a candidate is kept when another candidate's frame ends where it starts (every true
frame but the first is); and when each kept candidate ends exactly where the next begins, the kept candidates are the
chain. A false sync that some other false sync's end happens to reach breaks that test, and the chain is resumed
from the last verified frame's end (past ``_MAX_RESUMES`` of those, frame by frame). Both count exactly what a
frame-by-frame walk counts; ``tests/integration/test_compiled_walkers.py`` holds them to it.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import TYPE_CHECKING

from earshot.audio.lengths import compiled
from earshot.audio.lengths.common import AudioLength, Identified
from earshot.audio.lengths.mpeg_audio import _id3v2_end

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

AAC_FRAME = 1024
# ADTS sampling frequency index -> Hz (ISO/IEC 14496-3); 13-15 are reserved.
ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
_ADTS_LC = 1
AC3_FRAME = 1536
AC3_RATES = (48000, 44100, 32000)
# AC-3 bit rates (kbit/s) by frame size code // 2.
_AC3_BITRATES = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 576, 640)
_EAC3_BLOCKS = (1, 2, 3, 6)
# A false sync reached by chance makes the vectorised chain resume; past this many resumes it goes frame by frame.
_MAX_RESUMES = 64
_HEADER_BYTES = 8


@dataclass(frozen=True)
class _Kind:
    """How one stream's frames look: the header bits every frame repeats, and each frame's size and samples."""

    codec: str
    mask: bytes  # over the first ``_HEADER_BYTES`` bytes: bits every frame of the stream shares
    fixed: bytes  # their values (the first frame's)


def _header(data: mmap.mmap, start: int) -> bytes:
    return bytes(data[start : start + _HEADER_BYTES])


def _adts_kind(head: bytes) -> _Kind | None:
    if len(head) < 7 or head[0] != 0xFF or head[1] & 0xF6 != 0xF0:
        return None
    mask = bytes((0xFF, 0xFE, 0xFF, 0xC0, 0, 0, 0, 0))  # sync, ID, layer; profile, rate, channels (not protection)
    return _Kind("aac", mask, bytes(a & b for a, b in zip(head.ljust(8, b"\0"), mask, strict=True)))


def _ac3_kind(head: bytes) -> _Kind | None:
    if len(head) < 6 or head[:2] != b"\x0b\x77":
        return None
    bsid = head[5] >> 3
    if bsid <= 10:  # AC-3: rate code and bit stream id repeat (frame size code may change)
        mask = bytes((0xFF, 0xFF, 0, 0, 0xC0, 0xF8, 0, 0))
        return _Kind("ac3", mask, bytes(a & b for a, b in zip(head.ljust(8, b"\0"), mask, strict=True)))
    if 11 <= bsid <= 16:  # E-AC-3: the bit stream id repeats; substreams differ in type, id and size
        mask = bytes((0xFF, 0xFF, 0, 0, 0, 0xF8, 0, 0))
        return _Kind("eac3", mask, bytes(a & b for a, b in zip(head.ljust(8, b"\0"), mask, strict=True)))
    return None


def identify_elementary(data: mmap.mmap) -> Identified | None:
    """An ADTS AAC-LC, AC-3 or E-AC-3 stream from the first byte (after ID3v2 tags), its first two frames chained."""
    start = _id3v2_end(data)
    head = _header(data, start)
    kind = _adts_kind(head) or _ac3_kind(head)
    if kind is None:
        return None
    first = _frame_at(data, kind, start)
    if first is None or first[1] <= 0 or start + first[0] > len(data):
        return None
    following = start + first[0]
    if following < len(data) and _frame_at(data, kind, following) is None:
        return None  # one frame, then something else (or a frame the walk leaves to ffprobe): ffprobe decides
    if kind.codec == "aac":
        if head[2] >> 6 != _ADTS_LC:
            return None
        channels = ((head[2] & 0x01) << 2) | (head[3] >> 6)
        if not 1 <= channels <= 6:  # 0: the layout is in a PCE; 7: eight channels
            return None
        rate = _adts_rate(head)
        return Identified("aac", "aac", rate, channels) if rate is not None else None
    rate = _ac3_rate(head)
    if rate is None:
        return None
    return Identified(kind.codec, kind.codec, rate, _ac3_channels(head, kind.codec))


def _adts_rate(head: bytes) -> int | None:
    index = (head[2] >> 2) & 0x0F
    return ADTS_RATES[index] if index < len(ADTS_RATES) else None


def _ac3_rate(head: bytes) -> int | None:
    fscod = head[4] >> 6
    if fscod < 3:
        return AC3_RATES[fscod]
    if head[5] >> 3 > 10 and (head[4] >> 4) & 3 < 3:  # E-AC-3's reduced rates
        return AC3_RATES[(head[4] >> 4) & 3] // 2
    return None


def _ac3_channels(head: bytes, codec: str) -> int:
    """Channels of the first frame's coding mode (and LFE), as ffprobe reports them for the main stream."""
    if codec == "eac3":
        acmod, lfe = (head[4] >> 1) & 7, head[4] & 1
    else:
        acmod = head[6] >> 5
        # LFE follows acmod's optional fields (cmixlev, surmixlev, dsurmod: 2 bits each where present).
        skip = (2 if acmod & 1 and acmod != 1 else 0) + (2 if acmod & 4 else 0) + (2 if acmod == 2 else 0)
        lfe = (int.from_bytes(head[6:8], "big") >> (12 - skip)) & 1
    return (2, 1, 2, 3, 3, 4, 4, 5)[acmod] + lfe


def elementary_length(data: mmap.mmap, codec: str, sample_rate: int) -> AudioLength | None:
    """Samples of the complete frames chained from the first, at the stream's own rate converted to ``sample_rate``.

    ffprobe reports an HE-AAC (SBR) stream at twice its ADTS rate with 2048-sample frames: the seconds are the same,
    so the count is converted to the rate that identified the file.
    """
    if codec not in ("aac", "ac3", "eac3"):
        return None
    start = _id3v2_end(data)
    head = _header(data, start)
    kind = _adts_kind(head) if codec == "aac" else _ac3_kind(head)
    if kind is None or kind.codec != codec:
        return None
    rate = _adts_rate(head) if codec == "aac" else _ac3_rate(head)
    if rate is None:
        return None
    walkers = compiled.compiled_walkers()
    if walkers is not None:
        samples = walkers.elementary_frames(
            compiled.Mapped(data), position=start, codec=codec, mask=kind.mask, fixed=kind.fixed
        )
    else:
        samples = _chain_samples(data, kind, start)
    if samples is None:
        return None
    return AudioLength(samples * sample_rate // rate, sample_rate)


def _chain_samples(data: mmap.mmap, kind: _Kind, start: int) -> int | None:
    """Samples of the frames chained from ``start`` that are complete; ``None`` for a variant left to ffprobe."""
    import numpy as np

    size = len(data)
    buffer = np.frombuffer(data, dtype=np.uint8)
    last = size - _HEADER_BYTES
    if last < start:
        return 0
    sync = np.flatnonzero(buffer[start : last + 1] == kind.fixed[0]) + start
    for index in range(1, _HEADER_BYTES):  # the shared header bits
        if kind.mask[index]:
            sync = sync[buffer[sync + index] & kind.mask[index] == kind.fixed[index]]
    total = 0
    position = start
    for _ in range(_MAX_RESUMES):
        candidates = sync[np.searchsorted(sync, position) :]
        if not candidates.size or candidates[0] != position:
            return total  # junk, a tag, another stream or the file's end: the chain ends here
        sizes, samples, several = _frames(data, kind, candidates)
        ends = candidates + sizes
        reaching = np.sort(ends[sizes > 0])  # (np.isin hashes; sorting the nearly sorted ends is several times quicker)
        at = np.minimum(np.searchsorted(reaching, candidates), max(0, reaching.size - 1))
        kept = reaching[at] == candidates if reaching.size else np.zeros(candidates.size, dtype=bool)
        kept[0] = True
        chain, chain_sizes, chain_samples = candidates[kept], sizes[kept], samples[kept]
        chain_ends = chain + chain_sizes
        broken = np.flatnonzero((chain_sizes <= 0) | (chain_ends > size) | (chain_ends != np.append(chain[1:], -1)))
        if not broken.size:  # cannot happen (the last frame never ends at -1), kept for safety
            return total + int(chain_samples.sum())
        stop = int(broken[0])
        if several[kept][: stop + 1].any():
            return None  # a chained frame of several raw data blocks: a variant left to ffprobe
        total += int(chain_samples[:stop].sum())
        end = int(chain_ends[stop])
        if chain_sizes[stop] <= 0 or end > size:
            return total  # a frame the decoder refuses, or cut short: nothing from it on decodes in this chain
        total += int(chain_samples[stop])
        if end == size:
            return total
        position = end  # the frame after the last verified one: resume there
    return _walk_samples(data, kind, position, total)


def _walk_samples(data: mmap.mmap, kind: _Kind, position: int, total: int) -> int | None:
    """The chain from ``position`` frame by frame (``total`` counted before it): what the compiled walk does."""
    import numpy as np

    size = len(data)
    while position + _HEADER_BYTES <= size:
        head = _header(data, position)
        if bytes(a & b for a, b in zip(head, kind.mask, strict=True)) != kind.fixed:
            break
        sizes, samples, several = _frames(data, kind, np.asarray([position], dtype=np.int64))
        if several[0]:
            return None
        if sizes[0] <= 0 or position + int(sizes[0]) > size:
            break
        total += int(samples[0])
        position += int(sizes[0])
    return total


def _frame_at(data: mmap.mmap, kind: _Kind, position: int) -> tuple[int, int] | None:
    """(size, samples) of a frame of the stream at ``position``, ``None`` when there is none or the walk leaves it
    to ffprobe (a size of 0: a header the decoder refuses)."""
    import numpy as np

    head = _header(data, position)
    if len(head) < _HEADER_BYTES or bytes(a & b for a, b in zip(head, kind.mask, strict=True)) != kind.fixed:
        return None
    sizes, samples, several = _frames(data, kind, np.asarray([position], dtype=np.int64))
    return None if several[0] else (int(sizes[0]), int(samples[0]))


def _frames(
    data: mmap.mmap, kind: _Kind, candidates: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """(size, samples, a variant left to ffprobe) of the frame at each candidate. A size of 0 marks a header the
    decoder refuses; the variant is an ADTS frame of several raw data blocks."""
    import numpy as np

    buffer = np.frombuffer(data, dtype=np.uint8)
    byte = [buffer[candidates + index].astype(np.int64) for index in range(_HEADER_BYTES)]
    if kind.codec == "aac":
        sizes = ((byte[3] & 0x03) << 11) | (byte[4] << 3) | (byte[5] >> 5)
        sizes = np.where(sizes >= 7, sizes, 0)
        several = (sizes > 0) & (byte[6] & 0x03 != 0)  # several raw data blocks in a frame
        samples = np.where(sizes > 0, AAC_FRAME, 0)
    elif kind.codec == "ac3":
        code = byte[4] & 0x3F
        fscod = byte[4] >> 6
        bitrate = np.asarray(_AC3_BITRATES + (0,) * 13, dtype=np.int64)[code >> 1]
        words = np.where(fscod == 0, 2 * bitrate, np.where(fscod == 2, 3 * bitrate, bitrate * 320 // 147 + (code & 1)))
        sizes = np.where((code < 38) & (fscod < 3), 2 * words, 0)
        samples = np.where(sizes > 0, AC3_FRAME, 0)
    else:
        sizes = (((byte[2] & 0x07) << 8) | byte[3]) * 2 + 2
        stream_type, substream = byte[2] >> 6, (byte[2] >> 3) & 7
        blocks = np.where(byte[4] >> 6 == 3, 6, np.asarray(_EAC3_BLOCKS)[(byte[4] >> 4) & 3])
        sizes = np.where(stream_type < 3, sizes, 0)
        # Only the independent substream 0 adds time; dependent substreams and others carry more channels of it.
        samples = np.where((stream_type != 1) & (substream == 0) & (sizes > 0), 256 * blocks, 0)
    if kind.codec != "aac":
        several = np.zeros(len(candidates), dtype=bool)
    return sizes.astype(np.int64), samples.astype(np.int64), several
