"""The result type and the dispatch from ffprobe's container name to a walker."""

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


Walker = Callable[[mmap.mmap, str, int], "AudioLength | None"]
