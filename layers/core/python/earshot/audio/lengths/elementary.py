"""Raw elementary streams: ADTS AAC (``.aac``), AC-3 and E-AC-3 (``.ac3``, ``.eac3``): the frames ffmpeg decodes.

These files have no length header at all: each frame header says its own size and how many samples it decodes
to. The bill is the samples of the frames ffmpeg would decode, to a frame or two (there is no priming information to
trim), found with ffmpeg's resume rule (``_walk``, docs/decisions.md): frames are read where ffmpeg reads them,
junk or a frame cut short is stepped over as ffmpeg's demuxer or parser steps over it, and the walk resumes at the
next frame of the stream. What counts is never more than decodes: a frame counts when it is whole and ends at the
file's end or at another header of the stream (the frame junk was inserted into or cut from does not decode), and
after a break only once several frames of the stream chain from it (a false sync in junk is not billed). Variants the
walk does not read (an ADTS frame of several raw data blocks, a PCE instead of a channel configuration) are left to
ffprobe. ``mpeg_streams`` walks the ADTS stream of an MPEG-TS/PS file with the same walk (``stream_samples``).

The walk runs in C (``walkers.c``, ``earshot_elementary_frames``) where the compiled walkers are built. Without them
the stretches where every frame ends at the next are found without a Python step per frame: every offset that starts
like the first frame's header is a candidate; a candidate is kept when another candidate's frame ends where it starts
(every true frame but the first is); and while each kept candidate ends exactly where the next begins, the kept
candidates are the frames. Where that fails (damage, or a false sync some other false sync's end reaches) ``_walk``
goes on frame by frame until a frame counts again (past ``_MAX_RESUMES`` of those, to the end). Both count exactly
what ``_walk`` counts; ``tests/integration/test_compiled_walkers.py`` holds them to it.
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

_Buffer = mmap.mmap | bytes

AAC_FRAME = 1024
# ADTS sampling frequency index -> Hz (ISO/IEC 14496-3); 13-15 are reserved.
ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
_ADTS_LC = 1
AC3_FRAME = 1536
AC3_RATES = (48000, 44100, 32000)
# AC-3 bit rates (kbit/s) by frame size code // 2.
_AC3_BITRATES = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 576, 640)
_EAC3_BLOCKS = (1, 2, 3, 6)
# The walk's flags (walkers.c's ES_*): refuse a counted ADTS frame of several raw data blocks (``None``: ffprobe's);
# follow ffmpeg's raw ADTS demuxer (``.aac`` files) rather than its parser (ADTS in MPEG-TS/PS).
REFUSE_SEVERAL = 1
ADTS_DEMUXER = 2
# After a break a frame counts only when this many frames of the stream chain from it (or reach the file's end).
_RESYNC_CHAIN = 3
# ffmpeg's raw ADTS demuxer reads 7 + 3 bytes (an ID3v2 test) where it finds no sync, then scans for the next within
# its probesize (5,000,000 bytes).
_ADTS_SKIP = 10
_ADTS_WINDOW = 5_000_000
# Damage makes the vectorised walk go frame by frame until a frame counts again; past this many times, to the end.
_MAX_RESUMES = 64
# The header bytes every check reads (ADTS' fixed header, ffmpeg's AC3_HEADER_SIZE); masks cover the first 6.
_HEADER_BYTES = 7
_MASKED = 6


@dataclass(frozen=True)
class _Kind:
    """How one stream's frames look: the header bits every frame repeats, and each frame's size and samples."""

    codec: str
    mask: bytes  # over the first 8 header bytes (only the first ``_MASKED`` are set): bits every frame shares
    fixed: bytes  # their values (the first frame's)


def _header(data: _Buffer, start: int) -> bytes:
    return bytes(data[start : start + 8])


def _kind(codec: str, head: bytes, mask: bytes) -> _Kind:
    return _Kind(codec, mask, bytes(a & b for a, b in zip(head.ljust(8, b"\0"), mask, strict=True)))


def adts_kind(head: bytes) -> _Kind | None:
    """The ADTS stream whose first header is ``head``: sync, ID, layer, profile, rate and channels repeat (not the
    protection or private bits)."""
    if len(head) < _HEADER_BYTES or head[0] != 0xFF or head[1] & 0xF6 != 0xF0:
        return None
    return _kind("aac", head, bytes((0xFF, 0xFE, 0xFD, 0xC0, 0, 0, 0, 0)))


def _ac3_kind(head: bytes) -> _Kind | None:
    if len(head) < _HEADER_BYTES or head[:2] != b"\x0b\x77":
        return None
    bsid = head[5] >> 3
    if bsid <= 10:  # AC-3: rate code and bit stream id repeat (frame size code may change)
        return _kind("ac3", head, bytes((0xFF, 0xFF, 0, 0, 0xC0, 0xF8, 0, 0)))
    if 11 <= bsid <= 16:  # E-AC-3: the bit stream id repeats; substreams differ in type, id and size
        return _kind("eac3", head, bytes((0xFF, 0xFF, 0, 0, 0, 0xF8, 0, 0)))
    return None


def identify_elementary(data: mmap.mmap) -> Identified | None:
    """An ADTS AAC-LC, AC-3 or E-AC-3 stream from the first byte (after ID3v2 tags), its first two frames chained."""
    start = _id3v2_end(data)
    head = _header(data, start)
    kind = adts_kind(head) or _ac3_kind(head)
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
    """Samples of the frames ffmpeg decodes (``_walk``), at the stream's own rate converted to ``sample_rate``.

    ffprobe reports an HE-AAC (SBR) stream at twice its ADTS rate with 2048-sample frames: the seconds are the same,
    so the count is converted to the rate that identified the file.
    """
    if codec not in ("aac", "ac3", "eac3"):
        return None
    start = _id3v2_end(data)
    head = _header(data, start)
    kind = adts_kind(head) if codec == "aac" else _ac3_kind(head)
    if kind is None or kind.codec != codec:
        return None
    rate = _adts_rate(head) if codec == "aac" else _ac3_rate(head)
    if rate is None:
        return None
    samples = stream_samples(data, kind, start, REFUSE_SEVERAL | (ADTS_DEMUXER if codec == "aac" else 0))
    if samples is None:
        return None
    return AudioLength(samples * sample_rate // rate, sample_rate)


def stream_samples(data: _Buffer, kind: _Kind, start: int, flags: int) -> int | None:
    """``_walk``'s count from the stream's first frame at ``start``: compiled where the library is built, else
    vectorised. ``None`` at a counted ADTS frame of several raw data blocks when ``flags`` has ``REFUSE_SEVERAL``."""
    walkers = compiled.compiled_walkers()
    if walkers is not None:
        return walkers.elementary_frames(
            compiled.Mapped(data), position=start, codec=kind.codec, mask=kind.mask, fixed=kind.fixed, flags=flags
        )
    return _walk_vectorised(data, kind, start, flags)


# --- the walk, frame by frame (the reference: walkers.c's earshot_elementary_frames does exactly this) ------------
def _is_header(data: _Buffer, kind: _Kind, position: int) -> bool:
    """A header of the stream at ``position``: its first bytes agree with the first frame's under the mask."""
    if position < 0 or position > len(data) - _HEADER_BYTES:
        return False
    return all(data[position + index] & kind.mask[index] == kind.fixed[index] for index in range(_MASKED))


def _ac3_size(head: bytes) -> int:
    code, fscod = head[4] & 0x3F, head[4] >> 6
    if code >= 38 or fscod >= 3:
        return 0
    bitrate = _AC3_BITRATES[code >> 1]
    return 2 * (2 * bitrate if fscod == 0 else 3 * bitrate if fscod == 2 else bitrate * 320 // 147 + (code & 1))


def _eac3_size(head: bytes) -> int:
    size = (((head[2] & 0x07) << 8) | head[3]) * 2 + 2
    return 0 if head[2] >> 6 == 3 or size < _HEADER_BYTES or head[4] >> 4 == 0x0F else size


def _frame(data: _Buffer, kind: _Kind, position: int) -> tuple[int, int, bool]:
    """(size, samples, several raw data blocks) of the stream's frame at ``position``; size 0 where there is none
    or the decoder refuses its size."""
    if not _is_header(data, kind, position):
        return 0, 0, False
    head = bytes(data[position : position + _HEADER_BYTES])
    if kind.codec == "aac":
        size = ((head[3] & 0x03) << 11) | (head[4] << 3) | (head[5] >> 5)
        if size < (7 if head[1] & 0x01 else 9):  # the header, and its CRC where one is signalled
            return 0, 0, False
        return size, AAC_FRAME, head[6] & 0x03 != 0
    if kind.codec == "ac3":
        return _ac3_size(head), AC3_FRAME, False
    size = _eac3_size(head)
    blocks = 6 if head[4] >> 6 == 3 else _EAC3_BLOCKS[(head[4] >> 4) & 3]
    # Only the independent substream 0 adds time; dependent substreams and others carry more channels of it.
    return size, (256 * blocks if head[2] >> 6 != 1 and (head[2] >> 3) & 7 == 0 else 0), False


def _taken(data: _Buffer, kind: _Kind, position: int, flags: int) -> int:
    """The size of what ffmpeg takes as a frame of any stream at ``position`` (its demuxer's or parser's header
    check); 0 where it takes none; -1 where it stops (the raw ADTS demuxer: a sync of a size under 7, or fewer than
    7 bytes left)."""
    if position > len(data) - _HEADER_BYTES:
        return -1 if flags & ADTS_DEMUXER else 0
    head = bytes(data[position : position + _HEADER_BYTES])
    if kind.codec == "aac":
        if head[0] != 0xFF or head[1] & 0xF0 != 0xF0:
            return 0
        size = ((head[3] & 0x03) << 11) | (head[4] << 3) | (head[5] >> 5)
        if flags & ADTS_DEMUXER:
            return -1 if size < 7 else size
        return 0 if size < 7 or (head[2] >> 2) & 0x0F >= 13 else size
    if head[:2] != b"\x0b\x77" or head[5] >> 3 > 16:
        return 0
    return _ac3_size(head) if head[5] >> 3 <= 10 else _eac3_size(head)


def _chained(data: _Buffer, kind: _Kind, position: int) -> bool:
    """Whether ``_RESYNC_CHAIN`` whole frames of the stream chain from ``position`` (or reach the end before)."""
    size = len(data)
    for _ in range(_RESYNC_CHAIN):
        if position == size:
            return True
        length = _frame(data, kind, position)[0]
        if length <= 0 or length > size - position:
            return False
        position += length
    return True


def _resync(data: _Buffer, kind: _Kind, position: int, flags: int) -> int:
    """Where ffmpeg looks for its next frame after ``position``, where it found none; -1 where it finds none."""
    size = len(data)
    if flags & ADTS_DEMUXER:  # adts_aac_resync: the next 0xFFF sync 10 bytes on, within its window
        found = position + _ADTS_SKIP
        last = min(size - 2, found + _ADTS_WINDOW - 2)
        while 0 <= (found := data.find(b"\xff", found, last + 1)) <= last:
            if data[found + 1] & 0xF0 == 0xF0:
                return found
            found += 1
        return -1
    lead = b"\xff" if kind.codec == "aac" else b"\x0b"
    found = position + 1
    while (found := data.find(lead, found, size - _HEADER_BYTES + 1)) >= 0:
        if _taken(data, kind, found, flags) > 0:
            return found
        found += 1
    return -1


def _walk(
    data: _Buffer, kind: _Kind, position: int, flags: int, *, total: int = 0, pause: bool = False
) -> tuple[int | None, int, bool]:
    """(samples, where the walk is, whether it ended) of the stream from ``position``, frame by frame as ffmpeg reads
    it, counting only what decodes (``total`` counted before; ``position`` is the first frame, or one a counted
    frame ended at):

    - a frame of the stream (a header of the stream, a size the decoder takes) counts when it is whole and ends at
      the file's end or at another header of the stream: a frame followed by anything else is the one junk was
      inserted into or cut from (ffmpeg's decoder refuses it), or the last before trailing junk (ffmpeg's AC-3 parser
      glues the junk to it);
    - anything else ffmpeg takes as a frame (a false sync, another stream's header) is stepped over by its stated
      size, as ffmpeg's demuxer and parser do (what they swallow is not counted either); where there is none, the
      walk resyncs where ffmpeg does (``_resync``);
    - after such a break a frame counts only when ``_RESYNC_CHAIN`` frames of the stream chain from it (a false sync
      in junk does not), and the walk ends where ffmpeg stops (``_taken``).

    ``pause``: return as soon as a frame counts (the vectorised walk takes over from its end). Samples
    are ``None`` at a counted ADTS frame of several raw data blocks when ``flags`` has ``REFUSE_SEVERAL``.
    """
    size = len(data)
    linked = True
    while position < size:
        length, samples, several = _frame(data, kind, position)
        if length > 0:
            if length > size - position:
                break  # cut short: it does not decode, and nothing follows
            end = position + length
            counted = end == size or _is_header(data, kind, end)
            if counted and not linked:
                counted = _chained(data, kind, position)
            if counted:
                if several and flags & REFUSE_SEVERAL:
                    return None, position, True
                total += samples
                if pause:
                    return total, end, False
            linked = counted
            position = end
            continue
        linked = False
        taken = _taken(data, kind, position, flags)
        if taken < 0:
            break
        position = position + taken if taken else _resync(data, kind, position, flags)
        if position < 0:
            break
    return total, position, True


# --- the same walk, vectorised over the stretches where every frame ends at the next ------------------------------
def _walk_vectorised(data: _Buffer, kind: _Kind, start: int, flags: int) -> int | None:
    """``_walk``'s count: the frames that chain are found with numpy; ``_walk`` takes over at damage until a frame
    counts again."""
    import numpy as np

    size = len(data)
    last = size - _HEADER_BYTES
    if last < start:
        return _walk(data, kind, start, flags)[0]
    buffer = np.frombuffer(data, dtype=np.uint8)
    sync = np.flatnonzero(buffer[start : last + 1] == kind.fixed[0]) + start
    for index in range(1, _MASKED):  # the shared header bits
        if kind.mask[index]:
            sync = sync[buffer[sync + index] & kind.mask[index] == kind.fixed[index]]
    all_sizes, all_samples, all_several = _frames(buffer, kind, sync)
    total = 0
    position = start
    for _ in range(_MAX_RESUMES):
        first = int(np.searchsorted(sync, position))
        if position >= size or first == sync.size or sync[first] != position:
            break  # not a header of the stream: ``_walk`` goes on from here
        candidates, sizes = sync[first:], all_sizes[first:]
        ends = candidates + sizes
        reaching = np.sort(ends[sizes > 0])  # (np.isin hashes; sorting the nearly sorted ends is several times quicker)
        at = np.minimum(np.searchsorted(reaching, candidates), max(0, reaching.size - 1))
        kept = reaching[at] == candidates if reaching.size else np.zeros(candidates.size, dtype=bool)
        kept[0] = True
        chain, chain_sizes = candidates[kept], sizes[kept]
        chain_ends = chain + chain_sizes
        broken = (chain_sizes <= 0) | (chain_ends > size) | (chain_ends != np.append(chain[1:], -1))
        stop = int(np.flatnonzero(broken)[0])  # the last candidate never ends at -1
        # Each frame before ``stop`` is whole and ends at the next header of the stream: each counts.
        if flags & REFUSE_SEVERAL and all_several[first:][kept][:stop].any():
            return None
        total += int(all_samples[first:][kept][:stop].sum())
        walked, position, ended = _walk(data, kind, int(chain[stop]), flags, total=total, pause=True)
        if ended or walked is None:
            return walked
        total = walked
    return _walk(data, kind, position, flags, total=total)[0]


def _frame_at(data: mmap.mmap, kind: _Kind, position: int) -> tuple[int, int] | None:
    """(size, samples) of a frame of the stream at ``position``, ``None`` when there is none or the walk leaves it
    to ffprobe (a frame of several raw data blocks); a size of 0: a header the decoder refuses."""
    if not _is_header(data, kind, position):
        return None
    size, samples, several = _frame(data, kind, position)
    return None if several else (size, samples)


def _frames(
    buffer: npt.NDArray[np.uint8], kind: _Kind, candidates: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """``_frame`` at every candidate at once (each a header of the stream): size (0: refused), samples, several."""
    import numpy as np

    byte = [buffer[candidates + index].astype(np.int64) for index in range(_HEADER_BYTES)]
    several = np.zeros(len(candidates), dtype=bool)
    if kind.codec == "aac":
        sizes = ((byte[3] & 0x03) << 11) | (byte[4] << 3) | (byte[5] >> 5)
        sizes = np.where(sizes >= np.where(byte[1] & 0x01, 7, 9), sizes, 0)
        several = (sizes > 0) & (byte[6] & 0x03 != 0)  # several raw data blocks in a frame
        samples = np.full(len(candidates), AAC_FRAME, dtype=np.int64)
    elif kind.codec == "ac3":
        code = byte[4] & 0x3F
        fscod = byte[4] >> 6
        bitrate = np.asarray(_AC3_BITRATES + (0,) * 13, dtype=np.int64)[code >> 1]
        words = np.where(fscod == 0, 2 * bitrate, np.where(fscod == 2, 3 * bitrate, bitrate * 320 // 147 + (code & 1)))
        sizes = np.where((code < 38) & (fscod < 3), 2 * words, 0)
        samples = np.full(len(candidates), AC3_FRAME, dtype=np.int64)
    else:
        sizes = (((byte[2] & 0x07) << 8) | byte[3]) * 2 + 2
        stream_type, substream = byte[2] >> 6, (byte[2] >> 3) & 7
        blocks = np.where(byte[4] >> 6 == 3, 6, np.asarray(_EAC3_BLOCKS)[(byte[4] >> 4) & 3])
        sizes = np.where((stream_type < 3) & (sizes >= _HEADER_BYTES) & (byte[4] >> 4 != 0x0F), sizes, 0)
        # Only the independent substream 0 adds time; dependent substreams and others carry more channels of it.
        samples = np.where((stream_type != 1) & (substream == 0), 256 * blocks, 0)
    return sizes.astype(np.int64), samples.astype(np.int64), several
