"""The result types (a length, an identification) and the walkers' signature."""

from __future__ import annotations

import mmap
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class AudioLength:
    """Samples a decoder outputs (after gapless trimming), at ``sample_rate``.

    Attributes
    ----------
    samples
        Decoded samples per channel that the frames present in the file produce.
    sample_rate
        The rate those samples play at.
    exact
        ``True`` when exact to the sample; ``False`` when exact only to one codec frame (the container
        does not say where the last frame's padding starts, or the file was cut mid-stream).
    """

    samples: int
    sample_rate: int
    exact: bool = True

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate


@dataclass(frozen=True)
class Identified:
    """What ffprobe would report for the file: demuxer name, codec name, rate and channels of its audio stream,
    and whether a video stream comes with it."""

    format_name: str
    codec: str
    sample_rate: int
    channels: int
    has_video: bool = False

    @property
    def container(self) -> str:
        """The demuxer's first name (ffprobe's ``mov,mp4,m4a,...`` is ``mov``): the walker's key."""
        return self.format_name.split(",")[0]


Walker = Callable[[mmap.mmap, str, int], "AudioLength | None"]


# Bytes per sample of the PCM codecs ffprobe names, by the name's stem (``pcm_s16le`` -> ``s16``).
_PCM_BYTES = {"u8": 1, "s8": 1, "mulaw": 1, "alaw": 1, "s16": 2, "u16": 2, "s24": 3, "u24": 3, "s32": 4, "u32": 4}
_PCM_BYTES |= {"f32": 4, "s64": 8, "f64": 8}


def pcm_sample_bytes(codec: str) -> int:
    """Bytes per sample per channel of a plain PCM codec (``pcm_s16le`` -> 2); 0 for anything else."""
    if not codec.startswith("pcm_"):
        return 0
    stem = codec.removeprefix("pcm_")
    return next((size for name, size in _PCM_BYTES.items() if stem.startswith(name)), 0)
