"""Decode an uploaded audio or video file into 16 kHz mono 16-bit PCM, with PyAV's bundled ffmpeg."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from earshot.audio.budget import current_budget
from earshot.errors import InvalidAudioError

SAMPLE_RATE = 16_000

# ffmpeg demuxers for self-contained media files. A whitelist because ffmpeg also has demuxers that open
# other files or URLs named *inside* the upload (hls, concat, dash manifests, image sequences): an uploaded
# playlist must not make us read local files or fetch internal URLs. ffmpeg checks this list after probing,
# before the demuxer reads anything beyond the upload's own bytes. "mov" covers mp4/m4a/3gp, "matroska" webm.
_DEMUXERS = "aac,ac3,aiff,amr,asf,au,avi,caf,eac3,flac,flv,matroska,mov,mp3,mpeg,mpegts,ogg,w64,wav,wv"
_CONTAINER_OPTIONS = {"format_whitelist": _DEMUXERS, "protocol_whitelist": "file"}


def decoded_frames(container: Any, stream: Any) -> Iterator[av.AudioFrame]:
    """``stream``'s frames as the ffmpeg command line decodes them: a packet the decoder refuses (the frame a cut file
    ends in, a damaged one) is skipped and decoding goes on; the stream ends where the demuxer can read no further.

    A truncated recording therefore yields the audio before the cut (what metering bills), instead of nothing.
    """
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError:
            return  # the demuxer cannot go on (a cut or damaged container): what was read is the stream
        try:
            frames = packet.decode()
        except av.FFmpegError:
            continue
        yield from frames


def within_budget(frames: Iterable[av.AudioFrame], max_seconds: float | None = None) -> Iterator[av.AudioFrame]:
    """Decoded frames up to the request's budget (or ``max_seconds``, whichever is shorter); the rest is never decoded.

    The last frame is cut at the sample where the budget ends.
    """
    budgets = [b for b in (current_budget(), max_seconds) if b is not None]
    if not budgets:
        yield from frames
        return
    limit = min(budgets)
    seen = 0.0
    for frame in frames:
        rate = frame.sample_rate or 1
        left = round((limit - seen) * rate)
        if left <= 0:
            return
        if frame.samples > left:
            yield _head(frame, left)
            return
        seen += frame.samples / rate
        yield frame


def _head(frame: av.AudioFrame, samples: int) -> av.AudioFrame:
    """The first ``samples`` of ``frame``, as a new frame with the same format, layout, rate and start."""
    array: Any = frame.to_ndarray()
    planar = frame.format.is_planar
    cut = array[:, :samples] if planar else array[:, : samples * len(frame.layout.channels)]
    head = av.AudioFrame.from_ndarray(np.ascontiguousarray(cut), format=frame.format.name, layout=frame.layout.name)
    head.sample_rate = frame.sample_rate
    head.pts = frame.pts
    head.time_base = frame.time_base
    return head


def decode_to_pcm16k(path: Path, *, max_seconds: float | None = None) -> npt.NDArray[np.int16]:
    """Decode the first audio stream of a local file to mono 16-bit PCM at 16 kHz.

    Parameters
    ----------
    path
        A local regular file: any container ffmpeg reads as plain media (wav, mp3, m4a, ogg, webm, flac,
        mp4/mpeg video...). Anything else, URLs included, is refused.
    max_seconds
        Decode at most this much (the request's ``decode_budget`` applies as well).

    Returns
    -------
    numpy.ndarray
        One-dimensional ``int16`` samples at ``SAMPLE_RATE`` Hz, downmixed to mono.

    Raises
    ------
    InvalidAudioError
        The path is not a regular file, or it has no audio stream, or the audio does not decode, or it
        decodes to no samples at all. Messages never contain the path.
    """
    if not path.is_file():
        raise InvalidAudioError("the audio is not a readable file")
    # An absolute path so ffmpeg can never read a "scheme:" prefix in a relative name as a protocol.
    location = str(path.resolve())
    try:
        container = av.open(location, mode="r", container_options=_CONTAINER_OPTIONS)
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise InvalidAudioError("the file is not audio or video in a format we can decode") from exc

    chunks: list[npt.NDArray[np.int16]] = []
    with container:
        if not container.streams.audio:
            raise InvalidAudioError("the file has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        try:
            for frame in within_budget(decoded_frames(container, stream), max_seconds):
                chunks.extend(_samples(resampler.resample(frame)))
            chunks.extend(_samples(resampler.resample(None)))  # flush what the resampler buffered
        except (av.FFmpegError, ValueError) as exc:
            raise InvalidAudioError("the audio stream could not be decoded; the file may be corrupt") from exc

    if not chunks:
        raise InvalidAudioError("the audio stream contains no samples")
    # One copy into the final buffer: peak memory is twice the PCM, never a Python object per sample.
    return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]


def _samples(frames: list[av.AudioFrame]) -> list[npt.NDArray[np.int16]]:
    # Packed s16 mono frames come out as shape (1, n); keep the flat view.
    return [frame.to_ndarray().reshape(-1).astype(np.int16, copy=False) for frame in frames if frame.samples]
