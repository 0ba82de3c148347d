"""Audio fixtures generated at test time with PyAV (never committed).

``write_audio`` encodes a tone, noise or silence into any format Earshot accepts; ``decoded_duration`` is
the reference length every metering test compares against: the samples ffmpeg's decoder actually
produces, after the encoder delay and padding the container declares have been trimmed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np

if TYPE_CHECKING:
    from earshot.metering import MeteredAudio

FORMATS: tuple[str, ...] = (
    "wav",
    "mp3",
    "mp3_vbr",
    "mp3_vbr_noxing",
    "mp3_cbr_noxing",
    "m4a",
    "ogg_vorbis",
    "ogg_opus",
    "webm",
    "webm_noduration",
    "flac",
    "mp4_video",
    # Beyond the browser/API formats: MPEG program and transport streams with a video track.
    "mpeg_video",
    "mpegts_video",
)
KINDS: tuple[str, ...] = ("tone", "noise", "silence", "stereo_mix")

_OPUS_RATES = (48000, 24000, 16000, 12000, 8000)
_CHUNK = 4096
# LAME's fastest algorithm: fixtures need frames, not fidelity, and the default is twice as slow.
_LAME_FAST = {"compression_level": "9"}
# The video tracks of "*_video" run this much longer than the audio, so metering the container
# instead of the audio stream shows up in the tests.
_VIDEO_TAIL_SEC = 1.0
_VIDEO_FPS = 25  # one of the few rates MPEG-1 video allows


@dataclass(frozen=True)
class _Recipe:
    container: str
    codec: str
    suffix: str
    muxer_options: dict[str, str] = field(default_factory=dict)
    codec_options: dict[str, str] = field(default_factory=dict)
    bit_rate: int | None = None
    vbr_quality: float | None = None
    video_codec: str | None = None


_RECIPES: dict[str, _Recipe] = {
    "wav": _Recipe("wav", "pcm_s16le", ".wav"),
    "mp3": _Recipe("mp3", "libmp3lame", ".mp3", codec_options=_LAME_FAST, bit_rate=128_000),
    "mp3_vbr": _Recipe("mp3", "libmp3lame", ".mp3", codec_options=_LAME_FAST, vbr_quality=4.0),
    "mp3_vbr_noxing": _Recipe("mp3", "libmp3lame", ".mp3", {"write_xing": "0"}, _LAME_FAST, vbr_quality=4.0),
    "mp3_cbr_noxing": _Recipe("mp3", "libmp3lame", ".mp3", {"write_xing": "0"}, _LAME_FAST, bit_rate=128_000),
    "m4a": _Recipe("ipod", "aac", ".m4a", bit_rate=96_000),
    "ogg_vorbis": _Recipe("ogg", "vorbis", ".ogg", codec_options={"strict": "experimental"}),
    "ogg_opus": _Recipe("ogg", "libopus", ".opus", bit_rate=32_000),
    "webm": _Recipe("webm", "libopus", ".webm", bit_rate=32_000),
    # What a browser's MediaRecorder produces: no Duration element, no cues, unknown-size segment.
    "webm_noduration": _Recipe("webm", "libopus", ".webm", {"live": "1"}, bit_rate=32_000),
    "flac": _Recipe("flac", "flac", ".flac"),
    # Not in FORMATS (their walkers are the webm ones): WebM with Vorbis, and a Matroska (not WebM) doctype.
    "webm_vorbis": _Recipe("webm", "vorbis", ".webm", codec_options={"strict": "experimental"}),
    "mka_opus": _Recipe("matroska", "libopus", ".mka", bit_rate=32_000),
    "mp4_video": _Recipe("mp4", "aac", ".mp4", bit_rate=96_000, video_codec="mpeg4"),
    # Not in FORMATS: the sample table written first, as a streaming-ready upload has it (a cut file keeps it).
    "mp4_video_faststart": _Recipe(
        "mp4", "aac", ".mp4", {"movflags": "faststart"}, bit_rate=96_000, video_codec="mpeg4"
    ),
    "mpeg_video": _Recipe("mpeg", "mp2", ".mpg", bit_rate=128_000, video_codec="mpeg1video"),
    "mpegts_video": _Recipe("mpegts", "aac", ".ts", bit_rate=96_000, video_codec="mpeg2video"),
}


def write_audio(
    path: Path,
    *,
    fmt: str,
    seconds: float,
    sample_rate: int = 44100,
    channels: int = 1,
    kind: str = "tone",
) -> Path:
    """Encode ``seconds`` of ``kind`` audio into ``path`` in format ``fmt``.

    Parameters
    ----------
    path
        Where to write; the suffix does not matter (the container is chosen by ``fmt``).
    fmt
        One of ``FORMATS``. ``*_noxing`` mp3s carry no Xing/Info frame, so ffprobe can only estimate
        their length from the bitrate; ``webm_noduration`` has no Duration element (like a browser's
        MediaRecorder); ``*_video`` add a tiny video track that runs one second past the audio.
    seconds
        Length of the source signal; the decoded length differs by what the codec's framing allows.
    sample_rate
        Source sample rate. Opus only takes 8/12/16/24/48 kHz: other rates are encoded at 48 kHz.
    channels
        1 (mono) or 2 (stereo).
    kind
        ``"tone"`` (440 Hz sine), ``"noise"`` (white, seeded), ``"silence"``, or ``"stereo_mix"`` (half-second
        stretches of one signal on both channels, then independent ones).

    Returns
    -------
    Path
        ``path``, for chaining.
    """
    if fmt not in _RECIPES:
        raise ValueError(f"unknown fmt {fmt!r}; expected one of {', '.join(FORMATS)}")
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if channels not in (1, 2):
        raise ValueError("channels must be 1 or 2")
    recipe = _RECIPES[fmt]
    rate = sample_rate
    if recipe.codec == "libopus" and rate not in _OPUS_RATES:
        rate = 48000
    total = round(seconds * rate)
    # ffmpeg's native Vorbis encoder (the wheel has no libvorbis) only takes stereo.
    layout = "stereo" if channels == 2 or recipe.codec == "vorbis" else "mono"

    with av.open(str(path), mode="w", format=recipe.container, options=recipe.muxer_options) as out:
        stream: Any = out.add_stream(recipe.codec, rate=rate, options=recipe.codec_options)
        stream.layout = layout
        if recipe.bit_rate is not None:
            stream.bit_rate = recipe.bit_rate
        if recipe.vbr_quality is not None:
            # What `ffmpeg -q:a N` does: true VBR in LAME.
            stream.codec_context.qscale = True
            stream.codec_context.global_quality = int(recipe.vbr_quality * 118)  # FF_QP2LAMBDA
        video: Any = None
        if recipe.video_codec is not None:
            video = out.add_stream(recipe.video_codec, rate=_VIDEO_FPS)
            video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        pictures = round((seconds + _VIDEO_TAIL_SEC) * _VIDEO_FPS) if video is not None else 0
        shown = 0

        # Writes the header even when no sample follows (a zero-length file is a fixture too).
        out.start_encoding()
        for offset, block in _signal(kind, total=total, rate=rate, channels=2 if layout == "stereo" else 1):
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = offset
            frame.time_base = Fraction(1, rate)
            out.mux(stream.encode(frame))
            # Interleave the pictures up to the same instant: the MPEG muxers want them in time order.
            until = min(pictures, (offset + block.shape[1]) * _VIDEO_FPS // rate)
            shown = _show_pictures(out, video, shown, until)
        if total:
            # Flushing ffmpeg's Vorbis encoder before it has seen a sample never returns.
            out.mux(stream.encode(None))
        if video is not None:
            _show_pictures(out, video, shown, pictures)
            out.mux(video.encode(None))
    return path


def encode_tone(
    path: Path,
    container: str,
    codec: str,
    seconds: float,
    rate: int,
    options: dict[str, str] | None = None,
    *,
    bit_rate: int | None = None,
    layout: str = "mono",
) -> Path:
    """A 440 Hz tone of ``seconds`` (mono, or the same in every channel of ``layout``) muxed as ``container``/``codec``
    by name (any pair PyAV can write, beyond ``write_audio``'s recipes), with muxer ``options`` and the encoder's
    ``bit_rate`` (WMA has no default)."""
    total = int(seconds * rate)
    channels = av.AudioLayout(layout).nb_channels
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(total) / rate)).astype(np.float32)
    signal = np.repeat(tone[None, :], channels, axis=0)
    with av.open(str(path), "w", format=container, options=options or {}) as out:
        stream = out.add_stream(codec, rate=rate)
        assert isinstance(stream, av.AudioStream)
        stream.layout = layout
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        for offset in range(0, total, 4096):
            frame = av.AudioFrame.from_ndarray(signal[:, offset : offset + 4096], format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, offset, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def decoded_duration(path: Path) -> float:
    """The true length of the first audio stream: every decoded sample, divided by the sample rate.

    ffmpeg's decoder already drops the encoder delay and padding the container declares (LAME header,
    mp4 edit list, Opus pre-skip, Ogg granule positions), so this is what a listener hears.

    Parameters
    ----------
    path
        A file ``write_audio`` (or anything else PyAV can open) produced.

    Returns
    -------
    float
        Seconds of decoded audio.
    """
    samples = 0
    rate = 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            samples += frame.samples
            rate = frame.sample_rate
    return samples / rate if rate else 0.0


def written(folder: Path, name: str, data: bytes) -> Path:
    """``data`` written to ``folder / name``."""
    path = folder / name
    path.write_bytes(data)
    return path


def metered(path: Path) -> MeteredAudio:
    """``meter_duration`` of ``path`` with the configured ffprobe, as the routes call it."""
    from earshot.config import get_settings
    from earshot.metering import meter_duration

    return meter_duration(path, ffprobe=get_settings().resolved_ffprobe())


def ffprobe_names(path: Path) -> tuple[str, str, int, int]:
    """What ffprobe says the file is: (demuxer, the first audio stream's codec, rate, channels)."""
    import json
    import subprocess

    from earshot.config import get_settings

    done = subprocess.run(
        [
            *(str(get_settings().resolved_ffprobe()), "-v", "error", "-of", "json", "-show_entries"),
            *("format=format_name:stream=codec_type,codec_name,sample_rate,channels", f"file:{path}"),
        ],
        capture_output=True,
        check=True,
        env={"GCONV_PATH": "/nonexistent"},
    )
    probe = json.loads(done.stdout)
    audio = next(s for s in probe["streams"] if s["codec_type"] == "audio")
    return probe["format"]["format_name"], audio["codec_name"], int(audio["sample_rate"]), int(audio["channels"])


def metered_in_process(path: Path) -> MeteredAudio:
    """``metered(path)`` with ffprobe forbidden (the file must be identified and walked in-process), checked to name
    the file as ffprobe names it."""
    from unittest import mock

    expected = ffprobe_names(path)
    with mock.patch("earshot.metering._run_ffprobe", side_effect=AssertionError("ffprobe ran")):
        found = metered(path)
    assert found.source == "frames"
    assert (found.format_name, found.codec, found.sample_rate, found.channels) == expected
    return found


def decoded_tolerantly(path: Path) -> tuple[int, int]:
    """(samples, rate) PyAV decodes from the first audio stream packet by packet, as the ffmpeg command line does: a
    packet the decoder refuses (junk, a frame cut by the file's end) is skipped and decoding goes on; the stream ends
    where the demuxer stops. ``rate`` is 0 when nothing decodes."""
    samples = rate = 0
    with av.open(str(path)) as container:
        packets = container.demux(container.streams.audio[0])
        while True:
            try:
                packet = next(packets)
            except (StopIteration, av.FFmpegError):
                break
            try:
                frames = packet.decode()
            except av.FFmpegError:
                continue
            for frame in frames:
                samples, rate = samples + frame.samples, frame.sample_rate
    return samples, rate


def audio_bytes(fmt: str, seconds: float, **kw: Any) -> bytes:
    """``write_audio`` into a temporary file and return its bytes (for request bodies)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_audio(Path(tmp) / f"audio{_RECIPES[fmt].suffix}", fmt=fmt, seconds=seconds, **kw)
        return path.read_bytes()


def _show_pictures(out: Any, video: Any, shown: int, until: int) -> int:
    for index in range(shown, until):
        picture = np.full((64, 64, 3), (index * 7) % 256, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts = index
        frame.time_base = Fraction(1, _VIDEO_FPS)
        out.mux(video.encode(frame))
    return max(shown, until)


def _signal(kind: str, *, total: int, rate: int, channels: int) -> Iterator[tuple[int, np.ndarray]]:
    rng = np.random.default_rng(1234)
    for offset in range(0, total, _CHUNK):
        count = min(_CHUNK, total - offset)
        if kind == "tone":
            t = (np.arange(offset, offset + count) / rate).astype(np.float32)
            mono = 0.3 * np.sin(2 * np.pi * 440.0 * t, dtype=np.float32)
        elif kind == "noise":
            mono = rng.uniform(-0.3, 0.3, count).astype(np.float32)
        elif kind == "stereo_mix":
            # Half-second stretches alternate between one signal on both channels and independent channels, so a
            # stereo encoder's per-frame choice of channel coding (FLAC's left/side, mid/side...) changes.
            t = (np.arange(offset, offset + count) / rate).astype(np.float32)
            same = (np.arange(offset, offset + count) // (rate // 2)) % 2 == 0
            left = (0.3 * np.sin(2 * np.pi * 440.0 * t) + rng.uniform(-0.01, 0.01, count)).astype(np.float32)
            right = np.where(same, left, rng.uniform(-0.3, 0.3, count)).astype(np.float32)
            yield offset, np.ascontiguousarray(np.stack([left, right])[:channels])
            continue
        else:
            mono = np.zeros(count, dtype=np.float32)
        yield offset, np.ascontiguousarray(np.tile(mono, (channels, 1)))
