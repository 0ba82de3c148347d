"""WavPack (``.wv``, and WavPack blocks in Matroska): the samples of the complete blocks present, checked for lies.

A WavPack file is a chain of blocks, each a 32-byte header (``wvpk``, size, version, total samples, block index,
block samples, flags, CRC) and its sub-blocks. The file's total-samples field and the block indexes are headers
the decoder never needs; the samples come from each block's own ``block_samples``, which is also a header: the
decoder believes it and outputs that many samples whatever the bitstream holds (ffmpeg fills the rest of an
inflated block with made-up samples; the CRC that would catch it is only checked on request). So the counts are
cross-checked against each other before they are billed (``wavpack_samples``): encoders (libwavpack, ffmpeg) give
every block of a stream the same length and only the last one fewer, so no block is billed more than the stream's
common block length, and none more than the decoder's limit. A stream whose every block is inflated by the same
factor still passes: only decoding every block (with its CRC) would tell, at hundreds of times the cost of reading
the file.

Multichannel audio stores a frame as several blocks (the first flagged initial, the last final): a frame counts
once, when its final block is present. Anything that is not a complete block ends the walk (appended APEv2/ID3
tags, junk, a cut), as it ends ffmpeg's demuxer.
"""

from __future__ import annotations

import mmap
import struct

import numpy as np
import numpy.typing as npt

from earshot.audio.lengths.common import AudioLength, Identified

# The rates a block's flags name (index 15: a custom rate in a sub-block, left to ffprobe).
WAVPACK_RATES = (6000, 8000, 9600, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000, 192000)
# ffmpeg's decoder refuses a block of more samples than this (libavcodec/wavpack.h WV_MAX_SAMPLES).
WV_MAX_SAMPLES = 150_000
_HEADER = struct.Struct("<4sIHBBIIIII")
_MIN_VERSION, _MAX_VERSION = 0x402, 0x410
_MONO, _INITIAL, _FINAL, _FALSE_STEREO, _DSD = 1 << 2, 1 << 11, 1 << 12, 1 << 30, 1 << 31


def wavpack_samples(counts: npt.NDArray[np.int64]) -> int:
    """Samples billed for frames stating ``counts`` samples each, in stream order.

    A frame above the decoder's limit plays nothing. No frame is believed beyond the stream's common frame length
    (the most frequent count among all but the last frame): one inflated frame, or an inflated last frame, bills
    what an honest frame of the stream holds.
    """
    counts = np.where((counts > 0) & (counts <= WV_MAX_SAMPLES), counts, 0)
    if counts.size >= 2:
        body = counts[:-1][counts[:-1] > 0]
        if body.size:
            values, occurrences = np.unique(body, return_counts=True)
            common = int(values[occurrences == occurrences.max()].max())
            counts = np.minimum(counts, common)
    return int(counts.sum())


def wv_length(data: mmap.mmap, codec: str, sample_rate: int) -> AudioLength | None:
    """Samples of the complete frames of a ``.wv`` file, or ``None`` for what this walker does not read (DSD)."""
    if codec != "wavpack" or data[:4] != b"wvpk":
        return None
    size = len(data)
    counts: list[int] = []
    pending = -1  # the samples of a frame whose final block has not been read yet
    position = 0
    while position + _HEADER.size <= size:
        magic, body_size, version, _track, _index, _total, _block_index, samples, flags, _crc = _HEADER.unpack_from(
            data, position
        )
        end = position + 8 + body_size
        if magic != b"wvpk" or body_size < _HEADER.size - 8 or end > size:
            break
        if not _MIN_VERSION <= version <= _MAX_VERSION:
            break
        if flags & _DSD:
            return None
        if samples:
            if flags & _INITIAL:
                pending = samples
            elif samples != pending:
                pending = -1  # the decoder refuses channel blocks that disagree on the length
            if flags & _FINAL and pending >= 0:
                counts.append(pending)
                pending = -1
        position = end
    return AudioLength(wavpack_samples(np.asarray(counts, dtype=np.int64)), sample_rate)


def identify_wavpack(data: mmap.mmap) -> Identified | None:
    """A ``.wv`` file whose first block is a complete mono or stereo PCM block at a standard rate, else ``None``."""
    if len(data) < _HEADER.size:
        return None
    magic, body_size, version, _track, _index, _total, _block_index, samples, flags, _crc = _HEADER.unpack_from(data)
    if magic != b"wvpk" or not _MIN_VERSION <= version <= _MAX_VERSION or 8 + body_size > len(data):
        return None
    if not samples or flags & _DSD or not (flags & _INITIAL and flags & _FINAL):
        return None  # metadata-only first blocks, DSD and multichannel layouts are for ffprobe
    rate_index = (flags >> 23) & 0xF
    if rate_index >= len(WAVPACK_RATES):
        return None
    channels = 1 if flags & _MONO and not flags & _FALSE_STEREO else 2
    return Identified("wv", "wavpack", WAVPACK_RATES[rate_index], channels)


def block_rate(flags: int) -> int | None:
    """The sample rate a WavPack block's flags name, or ``None`` when it is a custom one."""
    rate_index = (flags >> 23) & 0xF
    return WAVPACK_RATES[rate_index] if rate_index < len(WAVPACK_RATES) else None
