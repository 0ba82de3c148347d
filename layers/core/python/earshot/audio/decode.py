"""Decode an uploaded audio or video file into 16 kHz mono 16-bit PCM, with PyAV's bundled ffmpeg."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from earshot.errors import InvalidAudioError

SAMPLE_RATE = 16_000

# ffmpeg demuxers for self-contained media files. A whitelist because ffmpeg also has demuxers that open
# other files or URLs named *inside* the upload (hls, concat, dash manifests, image sequences): an uploaded
# playlist must not make us read local files or fetch internal URLs. ffmpeg checks this list after probing,
# before the demuxer reads anything beyond the upload's own bytes. "mov" covers mp4/m4a/3gp, "matroska" webm.
_DEMUXERS = "aac,ac3,aiff,amr,asf,au,avi,caf,eac3,flac,flv,matroska,mov,mp3,mpeg,mpegts,ogg,w64,wav,wv"
_CONTAINER_OPTIONS = {"format_whitelist": _DEMUXERS, "protocol_whitelist": "file"}


def decode_to_pcm16k(path: Path) -> npt.NDArray[np.int16]:
    """Decode the first audio stream of a local file to mono 16-bit PCM at 16 kHz.

    Parameters
    ----------
    path
        A local regular file: any container ffmpeg reads as plain media (wav, mp3, m4a, ogg, webm, flac,
        mp4/mpeg video...). Anything else, URLs included, is refused.

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
            for frame in container.decode(stream):
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
