"""Decoding: one pass over the file, two views (native rate and channels; 16 kHz mono)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

# The decoder's demuxer whitelist: the analyzer opens uploads exactly as safely as the speech path does.
from earshot.audio.decode import _CONTAINER_OPTIONS, SAMPLE_RATE, decoded_frames, within_budget
from earshot.engines.analyzer._types import F64
from earshot.engines.analyzer.levels import _SURROUND, _SURROUND_WEIGHT, _LevelMeter, _Levels
from earshot.errors import InvalidAudioError

# ffmpeg's default layout for a channel count, for files that do not say (a plain WAV without a channel mask).
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


@dataclass(frozen=True)
class _Decoded:
    sample_rate: int
    layout: str
    channels: int
    duration_sec: float
    levels: _Levels
    pcm: npt.NDArray[np.int16]  # 16 kHz mono


def _decode(path: Path) -> _Decoded:
    """Decode the first audio stream once: metered at its own rate and channels, and kept as 16 kHz mono."""
    if not path.is_file():
        raise InvalidAudioError("the audio is not a readable file")
    try:
        container = av.open(str(path.resolve()), mode="r", container_options=_CONTAINER_OPTIONS)
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise InvalidAudioError("the file is not audio or video in a format we can decode") from exc

    chunks: list[npt.NDArray[np.int16]] = []
    meter: _LevelMeter | None = None
    native: Any = None
    layout = ""
    with container:
        if not container.streams.audio:
            raise InvalidAudioError("the file has no audio stream")
        stream = container.streams.audio[0]
        mono = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        try:
            for frame in within_budget(decoded_frames(container, stream)):
                if meter is None:
                    layout, names = _describe_layout(frame.layout)
                    meter = _LevelMeter(frame.sample_rate, _channel_weights(names))
                    # Planar float at the source's own rate and layout, whatever the codec's sample format.
                    native = av.AudioResampler(format="fltp", layout=frame.layout, rate=frame.sample_rate)
                for out in native.resample(frame):
                    meter.add(out.to_ndarray())
                chunks.extend(_mono_samples(mono.resample(frame)))
            if meter is not None:
                for out in native.resample(None):
                    meter.add(out.to_ndarray())
            chunks.extend(_mono_samples(mono.resample(None)))
        except (av.FFmpegError, ValueError) as exc:
            raise InvalidAudioError("the audio stream could not be decoded; the file may be corrupt") from exc

    levels = meter.finish() if meter is not None else None
    if levels is None or meter is None or levels.samples == 0:
        raise InvalidAudioError("the audio stream contains no samples")
    # A file of a few samples can resample to none at 16 kHz; the frame tracks then see one frame of silence.
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return _Decoded(
        sample_rate=meter.rate,
        layout=layout,
        channels=meter.channels,
        duration_sec=levels.samples / meter.rate,
        levels=levels,
        pcm=pcm,
    )


def _mono_samples(frames: Sequence[av.AudioFrame]) -> list[npt.NDArray[np.int16]]:
    return [frame.to_ndarray().reshape(-1).astype(np.int16, copy=False) for frame in frames if frame.samples]


def _describe_layout(layout: Any) -> tuple[str, list[str]]:
    """The layout's name and channel names, with ffmpeg's default order when the file leaves it unspecified."""
    names = [channel.name for channel in layout.channels]
    if all(name == "NONE" for name in names) and len(names) in _DEFAULT_LAYOUTS:
        default = av.AudioLayout(_DEFAULT_LAYOUTS[len(names)])
        return default.name, [channel.name for channel in default.channels]
    return str(layout.name), names


def _channel_weights(names: Sequence[str]) -> F64:
    """BS.1770-4 channel weights: 1.41 for side and back channels, 0 for LFE, 1 for the rest."""
    weights = [0.0 if name.startswith("LFE") else _SURROUND_WEIGHT if name in _SURROUND else 1.0 for name in names]
    return np.array(weights, dtype=np.float64)
