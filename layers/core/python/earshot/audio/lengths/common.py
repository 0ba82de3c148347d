"""The result type and the dispatch from ffprobe's container name to a walker."""

from __future__ import annotations

import mmap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from earshot.errors import InvalidAudioError


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


def _walkers() -> dict[str, Walker]:
    from earshot.audio.lengths import flac, matroska, mp4, mpeg_audio, ogg, riff

    return {
        "wav": riff.wav_length,
        "flac": flac.flac_length,
        "ogg": ogg.ogg_length,
        "mp3": mpeg_audio.mp3_length,
        "matroska": matroska.matroska_length,
        "mov": mp4.mp4_length,
    }


def walk_length(path: Path, *, container: str, codec: str, sample_rate: int) -> AudioLength | None:
    """The audio's length from its frames, or ``None`` when no walker reads this (container, codec).

    Raises
    ------
    InvalidAudioError
        The container's frames are there but none of them is complete (nothing would decode).
    """
    walker = _walkers().get(container)
    if walker is None:
        return None
    with path.open("rb") as handle:
        try:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise InvalidAudioError("The audio file is empty.", param="file") from None
        with data:
            length = walker(data, codec, sample_rate)
    if length is not None and length.samples <= 0:
        raise InvalidAudioError("The audio stream is empty or truncated: no complete frame decodes.", param="file")
    return length
