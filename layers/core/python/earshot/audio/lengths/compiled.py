"""The compiled frame walkers (``walkers.c``), loaded with ctypes, or ``None`` where the library was not built.

The FLAC sync scan, the Matroska/Opus block walk (laced blocks too), the MPEG audio frame walk, the Ogg page walk,
the ADTS/AC-3 frame walk, the MPEG-TS/PS payload walks, the FLV tag and AVI chunk chains and the ASF packets cost a
Python step (or several numpy passes) per frame; in C they run at about the speed of reading the file.
``walkers.c`` uses no Python headers and no libc, so one shared library serves Python 3.11 here and 3.13 on Lambda.
``make setup`` builds it next to this module (``python -m earshot.audio.lengths.compiled build``),
``infra/build_layers.py`` into the core layer.

The library records the SHA-256 of the source it was built from; one built from another ``walkers.c`` (edited since)
is not loaded. Without a usable library the walkers use their numpy paths, which count exactly the same frames
(slower); that is logged once.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import mmap
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import numpy.typing as npt

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("walkers.c")
LIBRARY = Path(__file__).with_name("_walkers.so")
# The ABI walkers.c declares (EARSHOT_WALKERS_ABI): the signatures below.
_ABI = 10
# -O2 and SSE2 (every x86_64 has it); no libc call in the source, so no glibc symbol version beyond the oldest.
_CFLAGS = ("-std=c99", "-O2", "-fPIC", "-shared", "-fvisibility=hidden", "-Wall", "-Wextra", "-Werror")

_Buffer = mmap.mmap | bytes
_i64 = ctypes.c_int64
_i64_pointer = ctypes.POINTER(ctypes.c_int64)


def source_digest(source: Path = SOURCE) -> str:
    """SHA-256 (hex) of the walkers' C source."""
    return hashlib.sha256(source.read_bytes()).hexdigest()


def build_library(output: Path = LIBRARY, *, compiler: str = "cc", extra_flags: Sequence[str] = ()) -> Path:
    """Compile ``walkers.c`` into the shared library ``output``, stamped with the source's SHA-256.

    Raises
    ------
    subprocess.CalledProcessError
        The compiler failed.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    digest = f'-DEARSHOT_WALKERS_SOURCE_SHA256="{source_digest()}"'
    command = [compiler, *_CFLAGS, *extra_flags, digest, "-o", str(output), str(SOURCE)]
    subprocess.run(command, check=True)
    return output


@dataclass(frozen=True)
class ClusterWalk:
    """Where ``matroska_blocks`` stopped, and what it counted on the way.

    ``blocks``, ``samples`` and ``last_samples``: the Opus SimpleBlocks taken, their samples, the last packet's.
    ``cluster_end`` and ``unknown_size``: the cluster the walk is in (it may have gone on into later clusters).
    ``cluster_done``: the walk stopped at the segment's level (at an element that is not a cluster); otherwise at an
    element inside the cluster that the Python walk takes.
    """

    position: int
    blocks: int
    samples: int
    last_samples: int
    cluster_end: int
    unknown_size: bool
    cluster_done: bool


@dataclass(frozen=True)
class OggPackets:
    """The complete packets of an Ogg stream (where each starts, its length, its first two bytes or 0), the last
    complete page's granule position (-1: none) and how many packets had ended by then, and where that page ends."""

    starts: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int64]
    first: npt.NDArray[np.uint8]
    second: npt.NDArray[np.uint8]
    last_granule: int
    granule_packets: int
    complete_end: int


@dataclass(frozen=True)
class MpegRecords:
    """``chains.mp3_payload_samples``' shortcut test made as a chain walk found the records, against the frame sizes
    of the stream the caller expected: the first record's first 4 bytes (big-endian; -1: fewer than 4 in the file),
    whether each record but the last is exactly one whole frame and the last starts one, the last's (offset, length).
    """

    first: int
    one_frame_each: bool
    last: tuple[int, int]


@dataclass(frozen=True)
class FlvAudio:
    """The audio tags ``flv_length`` counts: how many, the first one's codec id (-1: none), whether another codec
    follows, how many are AAC raw frames, (when asked for) their payloads after the flags byte: (offsets, lengths),
    and (when given a frame-size table) the MPEG audio test of those payloads."""

    records: int
    codec: int
    mixed: bool
    aac_frames: int
    payloads: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None
    mpeg: MpegRecords | None


@dataclass(frozen=True)
class AviChunks:
    """The audio chunks ``avi._audio_chunks`` finds: how many, (when asked for) their (payload offsets, payload bytes
    present), and (when given a frame-size table) the MPEG audio test of those payloads."""

    count: int
    payloads: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None
    mpeg: MpegRecords | None


class Mapped:
    """A file's bytes as the C walks read them: their address, held (the buffer stays exported) while this lives.

    ctypes takes the address of writable buffers only; numpy exports read-only ones too (a file mapped
    ``ACCESS_READ``), and while it does, the mapping cannot be closed under the C code.
    """

    def __init__(self, data: _Buffer) -> None:
        import numpy as np

        self.size = len(data)
        self._array = np.frombuffer(data, dtype=np.uint8) if self.size else np.zeros(1, dtype=np.uint8)
        self.address = int(self._array.ctypes.data)


class CompiledWalkers:
    """Typed calls into the loaded library. Each reads the whole file (``Mapped``) at offsets into it."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._flac = library.earshot_flac_frames
        self._flac.restype = _i64
        self._flac.argtypes = [ctypes.c_void_p, _i64, _i64, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._flac.argtypes += [_i64, _i64_pointer]
        self._flac_sizes = library.earshot_flac_block_sizes
        self._flac_sizes.restype = None
        self._flac_sizes.argtypes = [ctypes.c_void_p, _i64, ctypes.c_void_p, _i64, ctypes.c_void_p]
        self._matroska = library.earshot_matroska_blocks
        self._matroska.restype = _i64
        self._matroska.argtypes = [ctypes.c_void_p, _i64, _i64, _i64, ctypes.c_int, _i64, ctypes.c_int, _i64]
        self._matroska.argtypes += [_i64_pointer]
        self._ogg = library.earshot_ogg_packets
        self._ogg.restype = _i64
        self._ogg.argtypes = [ctypes.c_void_p, _i64, _i64, *[ctypes.c_void_p] * 4, _i64_pointer]
        self._mpeg = library.earshot_mpeg_frames
        self._mpeg.restype = _i64
        self._mpeg.argtypes = [ctypes.c_void_p, _i64, _i64, ctypes.POINTER(ctypes.c_int32), _i64_pointer]
        self._elementary = library.earshot_elementary_frames
        self._elementary.restype = _i64
        self._elementary.argtypes = [ctypes.c_void_p, _i64, _i64, ctypes.c_int, ctypes.c_int]
        self._elementary.argtypes += [ctypes.c_char_p, ctypes.c_char_p]
        self._ts = library.earshot_ts_payloads
        self._ts.restype = _i64
        self._ts.argtypes = [ctypes.c_void_p, _i64, _i64, _i64, ctypes.c_int, ctypes.c_void_p]
        self._pes = library.earshot_ts_pes_frames
        self._pes.restype = _i64
        self._pes.argtypes = [ctypes.c_void_p, _i64, _i64, ctypes.c_int, ctypes.c_int, ctypes.c_uint32]
        self._pes.argtypes += [ctypes.c_uint32, ctypes.c_void_p, _i64_pointer]
        self._ps = library.earshot_ps_mpeg_frames
        self._ps.restype = _i64
        self._ps.argtypes = [ctypes.c_void_p, _i64, _i64, ctypes.POINTER(ctypes.c_int32)]
        self._flv = library.earshot_flv_tags
        self._flv.restype = _i64
        self._flv.argtypes = [ctypes.c_void_p, _i64, _i64, _i64, ctypes.c_void_p]
        self._flv_audio = library.earshot_flv_audio
        self._flv_audio.restype = _i64
        self._flv_audio.argtypes = [ctypes.c_void_p, _i64, _i64, _i64, ctypes.c_void_p, ctypes.c_void_p]
        self._flv_audio.argtypes += [ctypes.POINTER(ctypes.c_int32), _i64_pointer]
        self._records = library.earshot_mpeg_records
        self._records.restype = _i64
        self._records.argtypes = [ctypes.c_void_p, _i64, _i64, ctypes.c_void_p, ctypes.c_void_p]
        self._records.argtypes += [ctypes.POINTER(ctypes.c_int32)]
        self._avi = library.earshot_avi_chunks
        self._avi.restype = _i64
        self._avi.argtypes = [ctypes.c_void_p, _i64, _i64, _i64, ctypes.c_void_p, ctypes.c_int, _i64]
        self._avi.argtypes += [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32), _i64_pointer]
        self._asf = library.earshot_asf_blocks
        self._asf.restype = _i64
        self._asf.argtypes = [ctypes.c_void_p, _i64, _i64, _i64, _i64, ctypes.c_int, _i64]

    def flac_frames(
        self, data: Mapped, *, after: int, second: int, stream: tuple[int, int, int], max_strays: int
    ) -> int | None:
        """Samples of every CRC-8-valid header of ``stream`` (rate code, channel count, depth code) whose sync pattern
        (``0xFF second``) is after ``after``; ``None`` when more than ``max_strays`` sync patterns are not one."""
        samples = _i64(0)
        strays = self._flac(data.address, data.size, after, second, *stream, max_strays, ctypes.byref(samples))
        return None if strays < 0 else samples.value

    def flac_block_sizes(self, data: Mapped, offsets: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """``flac.frame_block_sizes``: the block size of a valid frame header at each offset, 0 where none is."""
        import numpy as np

        at = np.ascontiguousarray(offsets, dtype=np.int64)
        sizes = np.empty(at.size, dtype=np.int64)
        self._flac_sizes(data.address, data.size, at.ctypes.data, at.size, sizes.ctypes.data)
        return sizes

    def matroska_blocks(
        self,
        data: Mapped,
        *,
        position: int,
        cluster_end: int,
        unknown_size: bool,
        segment_end: int,
        track_byte: int,
        alac_frame_length: int = 0,
    ) -> ClusterWalk:
        """``matroska_length``'s walk inside a cluster from ``position`` (and on into the clusters after it), as far
        as it meets only Opus SimpleBlocks of track ``track_byte`` (laced ones too) and elements to step over; with
        ``alac_frame_length``, ALAC SimpleBlocks in the fast form instead (their samples by that frame length)."""
        out = (_i64 * 6)()
        end = self._matroska(
            data.address,
            data.size,
            position,
            cluster_end,
            unknown_size,
            segment_end,
            track_byte,
            alac_frame_length,
            out,
        )
        return ClusterWalk(end, out[0], out[1], out[2], out[3], bool(out[4]), bool(out[5]))

    def ogg_packets(self, data: Mapped) -> OggPackets | None:
        """Every complete packet of the file's first logical Ogg stream; ``None`` when there is no such stream or
        another one begins (chained or multiplexed)."""
        import numpy as np

        out = (_i64 * 3)()
        count = self._ogg(data.address, data.size, 0, None, None, None, None, out)
        if count < 0:
            return None
        starts, lengths = np.empty(count, dtype=np.int64), np.empty(count, dtype=np.int64)
        first, second = np.empty(count, dtype=np.uint8), np.empty(count, dtype=np.uint8)
        arrays = [array.ctypes.data for array in (starts, lengths, first, second)]
        self._ogg(data.address, data.size, count, *arrays, out)
        return OggPackets(starts, lengths, first, second, out[0], out[1], out[2])

    def mpeg_frames(self, data: Mapped, *, position: int, sizes: FrameSizes) -> tuple[int, int]:
        """(frames, where the walk stopped) from ``position``, with a ``frame_sizes`` table."""
        frames = _i64(0)
        end = self._mpeg(data.address, data.size, position, sizes.table, ctypes.byref(frames))
        return frames.value, end

    def elementary_frames(
        self, data: Mapped, *, position: int, codec: str, mask: bytes, fixed: bytes, flags: int
    ) -> int | None:
        """Samples of the ADTS AAC, AC-3 or E-AC-3 stream from ``position`` whose 6 header bytes agree with ``fixed``
        under ``mask`` (8 bytes each), walked with ffmpeg's resume rule (``elementary._walk``); ``None`` at a counted
        ADTS frame of several raw data blocks when ``flags`` has ``elementary.REFUSE_SEVERAL``."""
        if len(mask) != 8 or len(fixed) != 8:
            raise ValueError("an elementary stream's header mask and values are 8 bytes")
        code = ("aac", "ac3", "eac3").index(codec)
        samples = self._elementary(data.address, data.size, position, code, flags, mask, fixed)
        return None if samples < 0 else int(samples)

    def ts_payloads(self, data: Mapped, *, count: int, pid: int, first: int = 0) -> mmap.mmap | bytes | None:
        """The PES payloads of ``pid`` in the 188-byte packets ``first`` to ``count``, from its first PES on, joined
        (in an anonymous mapping); ``None`` where ``mpeg_streams._ts_rows`` refuses the stream."""
        length = self._ts(data.address, data.size, first, count, pid, None)
        if length <= 0:
            return None if length < 0 else b""
        joined = mmap.mmap(-1, length)
        target = Mapped(joined)
        self._ts(data.address, data.size, first, count, pid, target.address)
        del target  # the mapping stays open for the walks; its buffer is no longer exported
        return joined

    def ts_pes_frames(
        self, data: Mapped, *, count: int, pid: int, adts: bool, mask: int, fixed: int, sizes: FrameSizes | None
    ) -> tuple[int, int, int] | None:
        """(the PES before the last, each one whole frame of the stream; the last PES's first packet; the packets
        read: ``count``, or those before one that lost the packet sync), or ``None`` where
        ``mpeg_streams._ts_one_frame_per_pes`` would not take the stream (``sizes``: MPEG audio's table)."""
        out = (_i64 * 2)()
        table = None if sizes is None else sizes.table
        frames = self._pes(data.address, data.size, count, pid, 0 if adts else 1, mask, fixed, table, out)
        return None if frames < 0 else (int(frames), out[0], out[1])

    def ps_mpeg_frames(self, data: Mapped, *, start: int, sizes: FrameSizes) -> int | None:
        """The MPEG audio frames of a plain program stream's audio, walked from ``start`` in that stream without
        joining it; ``None`` wherever ``mpeg_streams``' Python walk would do anything else (it then walks)."""
        frames = self._ps(data.address, data.size, start, sizes.table)
        return None if frames < 0 else int(frames)

    def flv_tags(self, data: Mapped, *, start: int) -> npt.NDArray[np.int64]:
        """``flv._tags``: the offsets of the tags ffmpeg's demuxer keeps, chained from ``start`` (resynced after a tag
        that disagrees with its trailing size)."""
        import numpy as np

        capacity = data.size // _RECORD_GUESS + 64
        for _ in range(2):
            tags = np.empty(capacity, dtype=np.int64)
            count = self._flv(data.address, data.size, start, capacity, tags.ctypes.data)
            if count < 0:
                raise ValueError("a tag chain starts inside the file")
            if count <= capacity:
                return tags[:count]
            capacity = count
        raise AssertionError("the tag count changed between two walks of the same bytes")

    def flv_audio(self, data: Mapped, *, start: int, payloads: bool, sizes: FrameSizes | None = None) -> FlvAudio:
        """``flv_length``'s reading of the audio tags among ``flv._tags`` (those wholly in the file, 2 bytes or more);
        ``payloads``: with their payloads' offsets and lengths (after the flags byte); ``sizes``: with the MPEG audio
        test of those payloads against that table."""
        import numpy as np

        out = (_i64 * 7)()
        capacity = data.size // _RECORD_GUESS + 64 if payloads else 0
        for _ in range(2):
            starts, lengths = np.empty(capacity, dtype=np.int64), np.empty(capacity, dtype=np.int64)
            arrays = (starts.ctypes.data, lengths.ctypes.data)
            table = None if sizes is None else sizes.table
            count = self._flv_audio(data.address, data.size, start, capacity, *arrays, table, out)
            if count < 0:
                raise ValueError("a tag chain starts inside the file")
            if count <= capacity or not payloads:
                found = (starts[:count], lengths[:count]) if payloads else None
                mpeg = None if sizes is None else _mpeg_records(out[3:7])
                return FlvAudio(int(count), out[0], bool(out[1]), out[2], found, mpeg)
            capacity = count
        raise AssertionError("the tag count changed between two walks of the same bytes")

    def mpeg_records(
        self, data: Mapped, *, starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64], sizes: FrameSizes
    ) -> bool:
        """Whether every record (``starts``, ``lengths``: int64, the same size) but the last is exactly one whole frame
        of the stream whose table is ``sizes``, and the last starts one (``chains.mp3_payload_samples``' shortcut)."""
        import numpy as np

        if starts.shape != lengths.shape or starts.dtype != np.int64 or lengths.dtype != np.int64:
            raise ValueError("record offsets and lengths are int64 arrays of one size")
        starts, lengths = np.ascontiguousarray(starts), np.ascontiguousarray(lengths)
        count = starts.size
        return bool(self._records(data.address, data.size, count, starts.ctypes.data, lengths.ctypes.data, sizes.table))

    def avi_chunks(
        self,
        data: Mapped,
        *,
        start: int,
        claimed: int,
        known: Sequence[int],
        payloads: bool = True,
        sizes: FrameSizes | None = None,
    ) -> AviChunks | None:
        """``avi._audio_chunks`` over the whole file: the chunks of id ``known[0]`` (the audio stream's) in the chunk
        chain of ``movi`` from ``start``, ``known`` the ids ffmpeg takes there and ``claimed`` the size it believes the
        file has; ``payloads``: with (payload offsets, payload bytes present); ``sizes``: with the MPEG audio test of
        those payloads against that table. ``None`` at a RIFF form that is not AVIX."""
        import numpy as np

        ids = np.asarray(known, dtype=np.uint32)
        if not ids.size:
            raise ValueError("the audio stream's chunk id comes first")
        out = (_i64 * 4)()
        capacity = data.size // _RECORD_GUESS + 64 if payloads else 0
        for _ in range(2):
            starts, lengths = np.empty(capacity, dtype=np.int64), np.empty(capacity, dtype=np.int64)
            arrays = (starts.ctypes.data, lengths.ctypes.data, None if sizes is None else sizes.table, out)
            count = self._avi(data.address, data.size, start, claimed, ids.ctypes.data, ids.size, capacity, *arrays)
            if count < 0:
                return None
            if count <= capacity or not payloads:
                found = (starts[:count], lengths[:count]) if payloads else None
                return AviChunks(int(count), found, None if sizes is None else _mpeg_records(out[0:4]))
            capacity = count
        raise AssertionError("the chunk count changed between two walks of the same bytes")

    def asf_blocks(
        self, data: Mapped, *, first: int, limit: int, packet: int, stream: int, block_align: int
    ) -> int | None:
        """``asf._blocks`` over the packets that start in [``first``, ``limit``): the blocks of stream ``stream``'s
        objects that ffmpeg's demuxer delivers; ``None`` where the numpy walk returns ``None``."""
        blocks = int(self._asf(data.address, data.size, first, limit, packet, stream, block_align))
        return None if blocks < 0 else blocks


def _mpeg_records(out: Sequence[int]) -> MpegRecords:
    return MpegRecords(out[0], bool(out[1]), (out[2], out[3]))


# Bytes per tag or chunk the result arrays are first sized for: files of records closer together take a second walk.
# The bench's 20-minute FLV and AVI files of 44.1 kHz mono AAC or MP3 hold one every 218-226 bytes (a guess of 256 made
# AVI MP3 walk twice). The arrays are returned as views: pages past the records written are reserved, never touched.
_RECORD_GUESS = 64


class FrameSizes:
    """An MPEG audio frame-size table (65,536 entries, by header bytes 1-2) as the C walk reads it."""

    def __init__(self, sizes: Sequence[int]) -> None:
        if len(sizes) != 65536 or min(sizes) < 0:
            raise ValueError("an MPEG frame-size table has 65,536 entries, none negative")
        self.table = (ctypes.c_int32 * 65536)(*sizes)


@functools.cache
def compiled_walkers() -> CompiledWalkers | None:
    """The loaded library; ``None`` (logged once) when it is missing, of another ABI, or built from another source."""
    why = _unusable(LIBRARY)
    if why is None:
        try:
            return CompiledWalkers(ctypes.CDLL(str(LIBRARY)))
        except (OSError, AttributeError) as error:
            why = f"cannot load: {error}"
    logger.warning("compiled frame walkers unavailable; using the numpy walks", extra={"reason": why})
    return None


def _unusable(library: Path) -> str | None:
    if not library.is_file():
        return "not built (make setup builds it)"
    try:
        loaded = ctypes.CDLL(str(library))
        abi = loaded.earshot_walkers_abi
        abi.restype = ctypes.c_int64
        source = loaded.earshot_walkers_source
        source.restype = ctypes.c_char_p
    except (OSError, AttributeError) as error:
        return f"cannot load: {error}"
    if abi() != _ABI:
        return f"ABI {abi()}, expected {_ABI}"
    if SOURCE.is_file() and source() != source_digest().encode():
        return "built from another walkers.c (make setup rebuilds it)"
    return None


def main(argv: Sequence[str]) -> int:
    """``build [OUTPUT]``: compile the library (``make setup`` runs it)."""
    if not argv or argv[0] != "build" or len(argv) > 2:
        print("usage: python -m earshot.audio.lengths.compiled build [OUTPUT]", file=sys.stderr)
        return 2
    output = build_library(Path(argv[1]) if len(argv) > 1 else LIBRARY)
    print(f"built {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
