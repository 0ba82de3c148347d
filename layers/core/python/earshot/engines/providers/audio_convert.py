"""Get audio into a format an upstream accepts, small enough for its request limit, with PyAV.

Upstreams take a short list of formats (Gemini: wav, mp3, aiff, aac, ogg, flac; OpenAI chat: wav, mp3) and cap
the request size. ``prepare_audio`` sends the upload untouched when it already qualifies; otherwise it re-encodes
the first audio stream to 16 kHz mono, the rate speech models work at, trying each target format in turn until
one fits.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import av

# The demuxer whitelist is a security boundary (no playlists, no URLs named inside the upload): share it, never
# copy it. TODO: expose it publicly from earshot.audio.decode.
from earshot.audio.decode import _CONTAINER_OPTIONS, SAMPLE_RATE, decoded_frames, within_budget
from earshot.engines.base import KnownAudio
from earshot.errors import FileTooLargeError, InvalidAudioError

TargetFormat = Literal["flac", "mp3", "wav"]

# What each encodable target is made of: (muxer, encoder, sample format the encoder takes).
_ENCODERS: dict[TargetFormat, tuple[str, str, str]] = {
    "flac": ("flac", "flac", "s16"),
    "mp3": ("mp3", "libmp3lame", "s16p"),
    "wav": ("wav", "pcm_s16le", "s16"),
}
# Speech at 16 kHz mono keeps its intelligibility at this rate; about 0.36 MB a minute.
_MP3_BIT_RATE = 48_000

_MOV = "mov,mp4,m4a,3gp,3g2,mj2"
_MATROSKA = "matroska,webm"


@dataclass(frozen=True)
class PreparedAudio:
    """Audio ready for an upstream request: the upload itself (``path``), or Earshot's re-encoding (``encoded``).

    Attributes
    ----------
    format
        What it is, in ``describe_format`` terms: ``wav``, ``mp3``, ``flac``, ``ogg``, ``m4a``...
    converted
        Whether Earshot re-encoded it (16 kHz mono) or passed the upload through.
    duration_sec
        Its length, when known: exact for converted audio, from the container otherwise.
    encoded
        The re-encoded file (``converted``).
    path
        The upload passed through (not ``converted``): streamed from disk by ``open``, never read whole unless
        ``data`` is asked for (a base64 JSON body needs it).
    """

    format: str
    converted: bool
    duration_sec: float | None
    encoded: bytes | None = None
    path: Path | None = None

    @property
    def data(self) -> bytes:
        """The whole file in memory."""
        if self.encoded is not None:
            return self.encoded
        assert self.path is not None
        return self.path.read_bytes()

    def open(self) -> BinaryIO:
        """The file to stream into a multipart request (read in 1 MiB pieces: earshot.engines.providers.upload)."""
        if self.encoded is not None:
            return io.BytesIO(self.encoded)
        assert self.path is not None
        return self.path.open("rb")


def describe_format(path: Path) -> tuple[str, float | None]:
    """Name the upload's format as upstreams name formats, and its length when the container says.

    Returns
    -------
    tuple
        ``(format, duration_sec)``. ``format`` is ``wav`` (PCM only), ``mp3``, ``flac``, ``ogg`` (Vorbis or
        Opus), ``aiff``, ``aac`` (ADTS), ``m4a`` (audio-only MP4), ``mp4`` (with video), ``webm`` (Opus or
        Vorbis, no video), or another name no upstream accepts as is (``mkv``, ``mpeg``, ``wav-adpcm_ms``...).

    Raises
    ------
    InvalidAudioError
        Not a media file we open, or no audio stream.
    """
    with _open(path) as container:
        stream = container.streams.audio[0]
        codec = stream.codec_context.name
        has_video = bool(container.streams.video)
        duration = container.duration / av.time_base if container.duration else None
        return _classify(container.format.name, codec, has_video=has_video), duration


def prepare_audio(
    path: Path,
    *,
    accepted: Collection[str],
    targets: Sequence[TargetFormat],
    max_bytes: int,
    upstream: str,
    known: KnownAudio | None = None,
) -> PreparedAudio:
    """The upload itself if ``accepted`` and within ``max_bytes``, else the first target encoding that fits.

    Parameters
    ----------
    path
        A local audio or video file.
    accepted
        Formats (``describe_format`` names) the upstream takes as they are.
    targets
        Formats to re-encode to, in order of preference (lossless first, compact last).
    max_bytes
        The largest audio the upstream request can carry.
    upstream
        The upstream's name, for the error message.
    known
        What metering found about this very file: its format is named from it (the file is not opened again) and
        its metered length is the one given, instead of the container's.

    Raises
    ------
    InvalidAudioError
        The file does not decode.
    FileTooLargeError
        Even the most compact target is larger than ``max_bytes``: the audio is too long for one request.
    """
    if known is not None:
        fmt = _classify(known.format_name, known.codec, has_video=known.has_video)
        duration: float | None = known.seconds
    else:
        fmt, duration = describe_format(path)
    size = path.stat().st_size
    if fmt in accepted and size <= max_bytes:
        return PreparedAudio(format=fmt, converted=False, duration_sec=duration, path=path)
    smallest = size
    for target in targets:
        data, seconds = encode_speech(path, target)
        if len(data) <= max_bytes:
            return PreparedAudio(format=target, converted=True, duration_sec=seconds, encoded=data)
        smallest = min(smallest, len(data))
    raise FileTooLargeError(
        f"the audio is too long for {upstream}: it takes {smallest / 1e6:.1f} MB even compressed, and {upstream} "
        f"accepts at most {max_bytes / 1e6:.1f} MB of audio in one request; send a shorter recording or split it",
        param="file",
    )


def encode_speech(path: Path, target: TargetFormat) -> tuple[bytes, float]:
    """Re-encode the first audio stream of ``path`` to 16 kHz mono ``target``; returns the bytes and seconds."""
    muxer, encoder, sample_format = _ENCODERS[target]
    buffer = io.BytesIO()
    samples = 0
    try:
        with _open(path) as source, av.open(buffer, mode="w", format=muxer) as sink:
            out: Any = sink.add_stream(encoder, rate=SAMPLE_RATE)
            out.layout = "mono"
            if target == "mp3":
                out.bit_rate = _MP3_BIT_RATE
            resampler = av.AudioResampler(format=sample_format, layout="mono", rate=SAMPLE_RATE)
            for frame in within_budget(decoded_frames(source, source.streams.audio[0])):
                for chunk in resampler.resample(frame):
                    samples += chunk.samples
                    sink.mux(out.encode(chunk))
            for chunk in resampler.resample(None):
                samples += chunk.samples
                sink.mux(out.encode(chunk))
            sink.mux(out.encode(None))
    except (av.FFmpegError, ValueError) as exc:
        raise InvalidAudioError("the audio stream could not be decoded; the file may be corrupt") from exc
    if samples == 0:
        raise InvalidAudioError("the audio stream contains no samples")
    return buffer.getvalue(), samples / SAMPLE_RATE


def _open(path: Path) -> Any:
    if not path.is_file():
        raise InvalidAudioError("the audio is not a readable file")
    try:
        container = av.open(str(path.resolve()), mode="r", container_options=_CONTAINER_OPTIONS)
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise InvalidAudioError("the file is not audio or video in a format we can decode") from exc
    if not container.streams.audio:
        container.close()
        raise InvalidAudioError("the file has no audio stream")
    return container


def _classify(container: str, codec: str, *, has_video: bool) -> str:
    if container == "wav":
        return "wav" if codec.startswith("pcm_") else f"wav-{codec}"
    if container in ("mp3", "flac", "aiff", "aac"):
        return container
    if container == "ogg":
        return "ogg" if codec in ("vorbis", "opus") else f"ogg-{codec}"
    if container == _MOV:
        return "mp4" if has_video else "m4a"
    if container == _MATROSKA:
        return "webm" if codec in ("opus", "vorbis") and not has_video else "mkv"
    return container
