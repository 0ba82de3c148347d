"""Raw AMR (``.amr``, RFC 4867 storage format, single channel): 20 ms per whole speech frame, nothing else counted.

The file is a magic line (``#!AMR`` or ``#!AMR-WB``) and frames, each a header byte whose mode fixes the frame's
size. There is no length header to lie; what a decoder outputs is 160 (AMR-NB, 8 kHz) or 320 (AMR-WB, 16 kHz)
samples per speech frame, and ffmpeg's decoder refuses comfort-noise (SID), reserved and NO_DATA frames, after which
PyAV and the engine stop: the bill counts the whole speech frames up to the first frame that is not one (or the
first frame cut short). A constant-mode file (what encoders write without DTX) is checked in one numpy pass over
its header bytes; any other is walked frame by frame.
"""

from __future__ import annotations

import mmap

from earshot.audio.lengths.common import AudioLength, Identified

# Bytes of a frame (its header byte included) by mode; 0 where ffmpeg's decoder refuses the frame (comfort noise SID,
# reserved modes, NO_DATA). Shared with mp4.py (AMR in an MP4/3GP ``samr``/``sawb`` track).
FRAME_BYTES = {
    "amr_nb": (13, 14, 16, 18, 20, 21, 27, 32) + (0,) * 8,
    "amr_wb": (18, 24, 33, 37, 41, 47, 51, 59, 61) + (0,) * 7,
}
# Samples a speech frame decodes to (20 ms).
FRAME_SAMPLES = {"amr_nb": 160, "amr_wb": 320}
_RATES = {"amr_nb": 8000, "amr_wb": 16000}
_MAGIC = {"amr_nb": b"#!AMR\n", "amr_wb": b"#!AMR-WB\n"}


def _codec(data: mmap.mmap) -> str | None:
    head = data[:9]
    return next((codec for codec, magic in _MAGIC.items() if head.startswith(magic)), None)


def identify_amr(data: mmap.mmap) -> Identified | None:
    """A single-channel raw AMR-NB or AMR-WB file whose first frame is a whole speech frame, else ``None``."""
    codec = _codec(data)
    if codec is None:
        return None
    start = len(_MAGIC[codec])
    if start >= len(data) or data[start] & 0x83:  # padding bits must be 0
        return None
    size = FRAME_BYTES[codec][(data[start] >> 3) & 0x0F]
    if not size or start + size > len(data):
        return None
    return Identified("amr", codec, _RATES[codec], 1)


def amr_length(data: mmap.mmap, codec: str, sample_rate: int) -> AudioLength | None:
    if codec not in FRAME_BYTES or _codec(data) != codec:
        return None
    start = len(_MAGIC[codec])
    frames = _constant_mode_frames(data, start, codec)
    if frames is None:
        frames = walk_frames(data, start, len(data), codec)
    return AudioLength(frames * FRAME_SAMPLES[codec] * sample_rate // _RATES[codec], sample_rate)


def _constant_mode_frames(data: mmap.mmap, start: int, codec: str) -> int | None:
    """Whole frames when every frame has the first one's header byte, else ``None``."""
    import numpy as np

    if start >= len(data):
        return 0
    first = data[start]
    size = FRAME_BYTES[codec][(first >> 3) & 0x0F]
    if not size:
        return 0
    whole = (len(data) - start) // size
    headers = np.frombuffer(data, dtype=np.uint8)[start : start + whole * size : size]
    if not (headers == first).all():
        return None
    return whole


def walk_frames(data: mmap.mmap, position: int, end: int, codec: str) -> int:
    """Whole speech frames from ``position`` up to the first frame the decoder refuses or that ``end`` cuts short."""
    sizes = FRAME_BYTES[codec]
    frames = 0
    while position < end:
        size = sizes[(data[position] >> 3) & 0x0F]
        if not size or position + size > end:  # (the decoder ignores the header's padding bits)
            break
        frames += 1
        position += size
    return frames
