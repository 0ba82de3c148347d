"""Duration metering: how long the audio really is, which is what a request is billed for.

ffprobe, run on a local file (never a URL), is the authority on *what* the file is: container, codec, sample
rate, with protocol and demuxer whitelists. The one exception: WAV (PCM), native FLAC, MPEG audio, single-stream
Ogg (Opus, Vorbis), MP4/M4A/MOV/3GP with one AAC, ALAC, FLAC, Opus, IMA4 or AMR track (and any video tracks),
mono/stereo WavPack, raw ADTS AAC, AC-3, E-AC-3 and AMR, PCM in AIFF, AU and Wave64, CAF, MPEG-TS/PS audio,
single-track Matroska/WebM (Opus, Vorbis, ALAC, WavPack), FLV (AAC-LC, MP3), AVI (MP3, PCM) and ASF (WMA v1/v2
without the bit reservoir) whose signature, codec header and structure parse cleanly in-process
(``earshot.audio.lengths.identify``) and whose frame walk then finds audio are measured without starting ffprobe
(its process start costs more than reading a minute of audio); anything else, or anything those checks doubt, goes
to ffprobe exactly as before. *How long* it is comes from the audio data itself, never from a length header (a
1-second file may claim ten hours, a 100-second one one second, a cut file its full length):

* wav, aiff, au, w64, flac, ogg (Opus, Vorbis), mp3/mp2, ADTS AAC, AC-3, E-AC-3, AMR, WavPack, Matroska/WebM
  (Opus, Vorbis, ALAC, WavPack), mp4/m4a/mov/3gp (AAC, Opus, FLAC, ALAC, PCM, IMA4, AMR), CAF (ALAC, FLAC, AAC,
  PCM, IMA4), MPEG-TS/PS, FLV, AVI and ASF are walked in-process, the hot loops in C (``walkers.c``) with numpy
  walks behind them (``earshot.audio.lengths``): the frames or packets present in the file, each one's own
  length, with the encoder delay and padding the stream declares trimmed as decoders trim them (gapless, exact to
  the sample where the container says it, to one frame where it cannot);
* everything else is counted by ffprobe: PCM by its packets' bytes, other codecs by packets times
  samples-per-packet when the codec fixes it or the first packets agree on it, else the sum of every packet's duration.

Engines are then fed no more than the metered length (``earshot.audio.budget.decode_budget``).
"""

from __future__ import annotations

import json
import logging
import math
import mmap
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from earshot.audio.lengths import walk_length
from earshot.audio.lengths.common import pcm_sample_bytes
from earshot.audio.lengths.identify import identify
from earshot.errors import InternalError, InvalidAudioError

logger = logging.getLogger(__name__)

# Demuxers ffprobe may use. Playlists and references (hls, concat, dash, image2 sequences) would open
# other files, so anything not plainly an audio or audio/video container is refused.
_ALLOWED_DEMUXERS = (
    "aac,ac3,aiff,amr,amrnb,amrwb,ape,asf,au,avi,caf,dts,eac3,flac,flv,matroska,mov,mp3,mpeg,mpegts,ogg,w64,wav,wv"
)
# Below this rate a "recording" is a header trick (a 72 kB file at 1 Hz holds ten hours), not audio.
MIN_SAMPLE_RATE = 2000
# Codecs whose every packet carries a fixed number of samples.
_SAMPLES_PER_PACKET = {"mp1": 384, "mp2": 1152, "mp3": 1152, "aac": 1024, "ac3": 1536, "eac3": 1536}
_WAV_PROBE_BYTES = "32768"
_WALKED_PROBE_BYTES = "65536"
# How many leading packets the first probe reads to learn a packet's duration (Opus, FLAC).
_LEADING_PACKETS = 8
_STREAM_FIELDS = (
    "index,codec_type,codec_name,profile,sample_rate,channels,time_base,start_time,duration,initial_padding"
)
# The pinned static ffprobe's glibc crashes in iconv (MPEG-TS service names) when it finds the host's
# gconv modules; with none, iconv fails cleanly. The child also gets no other environment at all.
_FFPROBE_ENV = {"GCONV_PATH": "/nonexistent", "LC_ALL": "C"}


@dataclass(frozen=True)
class MeteredAudio:
    """The measured length of an audio file and what it was measured from.

    Attributes
    ----------
    seconds
        Length of the first audio stream, in seconds (always positive).
    source
        ``"frames"`` when the frames were walked, ``"packets"`` when ffprobe counted the packets.
    format_name
        ffprobe's demuxer name, e.g. ``"mp3"`` or ``"mov,mp4,m4a,3gp,3g2,mj2"``.
    codec
        Audio codec, e.g. ``"mp3"``, ``"aac"``, ``"opus"``.
    sample_rate
        Audio sample rate in Hz.
    channels
        Audio channel count.
    has_video
        Whether the file also carries a video stream (cover art does not count).
    """

    seconds: float
    source: str
    format_name: str
    codec: str
    sample_rate: int
    channels: int
    has_video: bool


def meter_duration(path: Path, *, ffprobe: Path, timeout_sec: float = 15.0) -> MeteredAudio:
    """Measure how long the audio in a local file lasts.

    Runs ffprobe once (twice when the container's length has to be counted), restricted to the
    ``file`` protocol and to audio/video demuxers, without a shell and without the caller's environment.

    Parameters
    ----------
    path
        The audio file on local disk. Its name is never interpreted as a URL or protocol.
    ffprobe
        The ffprobe binary (``get_settings().resolved_ffprobe()``).
    timeout_sec
        Deadline for all ffprobe runs together.

    Returns
    -------
    MeteredAudio
        Length of the first audio stream, exact to one codec frame against the decoded length.

    Raises
    ------
    InvalidAudioError
        The file is empty, is not readable audio (truncated, damaged, another kind of file, a playlist),
        has no audio stream or an empty one, or ffprobe failed or ran out of time.
    InternalError
        The ffprobe binary could not be started at all.
    """
    local = Path(path).resolve()
    head = _read_head(local)
    if (known := _identified_in_process(local)) is not None:
        return known
    deadline = time.monotonic() + timeout_sec
    walkable = _walkable(head)
    probe = _run_ffprobe(ffprobe, local, _first_probe_args(head, walkable=walkable), deadline=deadline)

    streams: list[dict[str, Any]] = probe.get("streams") or []
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if audio is None:
        raise InvalidAudioError("The file has no audio stream.", param="file")
    sample_rate = _int(audio.get("sample_rate"))
    if sample_rate <= 0:
        raise InvalidAudioError("The audio stream has no sample rate; the file may be damaged.", param="file")
    if sample_rate < MIN_SAMPLE_RATE:
        raise InvalidAudioError(
            f"The audio's sample rate is {sample_rate} Hz; at least {MIN_SAMPLE_RATE} Hz is accepted.", param="file"
        )
    others = [s for s in streams if s is not audio and not _is_cover_art(s)]
    has_video = any(s.get("codec_type") == "video" for s in others)
    format_name = str(probe.get("format", {}).get("format_name") or "unknown")
    container = format_name.split(",")[0]
    codec = str(audio.get("codec_name") or "unknown")

    source = "frames"
    walked = None
    if walkable and _int(audio.get("index")) == _first_audio_index(streams):
        try:
            walked = walk_length(local, container=container, codec=codec, sample_rate=sample_rate)
        except OSError as exc:
            raise InvalidAudioError("The audio file could not be read.", param="file") from exc
    if walked is not None:
        seconds = walked.seconds
    else:
        source = "packets"
        if walkable:  # a variant the walkers do not read: list the leading packets for the counter
            probe = _run_ffprobe(ffprobe, local, _first_probe_args(head, walkable=False), deadline=deadline)
            audio = next((s for s in probe.get("streams") or [] if s.get("codec_type") == "audio"), audio)
        seconds = _counted_seconds(
            ffprobe, local, probe, audio, codec=codec, sample_rate=sample_rate, deadline=deadline
        )
        if container == "mp3":
            # The mp3 demuxer reports the LAME encoder delay as the start time; the decoder drops it.
            seconds -= max(_float(audio.get("start_time")) or 0.0, 0.0)
        # Opus pre-skip: part of granule positions and packet durations, dropped by the decoder.
        seconds -= _int(audio.get("initial_padding")) / sample_rate
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidAudioError("The audio stream is empty: it holds no samples.", param="file")

    return MeteredAudio(
        seconds=seconds,
        source=source,
        format_name=format_name,
        codec=codec,
        sample_rate=sample_rate,
        channels=_int(audio.get("channels")),
        has_video=has_video,
    )


def _identified_in_process(local: Path) -> MeteredAudio | None:
    """The file measured without ffprobe, when ``identify`` names it and its frames hold audio; else ``None``."""
    try:
        with local.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            found = identify(data)
    except (OSError, ValueError):
        return None  # ffprobe's path reports what is wrong with the file
    if found is None or found.sample_rate < MIN_SAMPLE_RATE:
        return None
    try:
        walked = walk_length(local, container=found.container, codec=found.codec, sample_rate=found.sample_rate)
    except (InvalidAudioError, OSError):
        return None
    if walked is None or walked.samples <= 0:
        return None
    return MeteredAudio(
        seconds=walked.seconds,
        source="frames",
        format_name=found.format_name,
        codec=found.codec,
        sample_rate=found.sample_rate,
        channels=found.channels,
        has_video=found.has_video,
    )


def _first_probe_args(head: bytes, *, walkable: bool) -> list[str]:
    """Headers and stream parameters, plus what the file's first bytes say will be needed next.

    Files a walker reads need nothing more. Raw MPEG audio the walker does not read (ADTS AAC) is counted in
    this run already; other files list their first packets, whose durations the counting fallback may need.
    """
    entries = f"format=format_name,duration:stream={_STREAM_FIELDS}:stream_disposition=attached_pic"
    if walkable:
        # Only the stream parameters are needed (the walker reads the length): the first 64 kB say them.
        return ["-probesize", _WALKED_PROBE_BYTES, "-show_entries", entries]
    elif _looks_like_mpeg_audio(head):
        entries = f"format=format_name,duration:stream={_STREAM_FIELDS},nb_read_packets:stream_disposition=attached_pic"
        return ["-count_packets", "-show_entries", entries]
    else:
        args = ["-read_intervals", f"%+#{_LEADING_PACKETS}", "-show_entries", entries + ":packet=stream_index,duration"]
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        # A WAV header holds every stream parameter; the default 5 MB probe only doubles the run time.
        args = ["-probesize", _WAV_PROBE_BYTES, *args]
    return args


def _walkable(head: bytes) -> bool:
    """Whether the first bytes name a container that ``walk_length`` reads (ffprobe still has the last word)."""
    return (
        (head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE")
        or head.startswith((b"fLaC", b"OggS", b"\x1a\x45\xdf\xa3", b"wvpk", b"caff"))
        or head[4:8] == b"ftyp"
        or head.startswith((b".snd", b"FORM", b"riff", b"\x0b\x77", b"#!AMR"))  # AU, AIFF, Wave64; AC-3, AMR
        or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0)  # ADTS AAC
        or (head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE6 in (0xE2, 0xE4)))
    )


def _first_audio_index(streams: list[dict[str, Any]]) -> int:
    """The walkers read the file's first audio track; so must ffprobe's choice be."""
    return next((_int(s.get("index")) for s in streams if s.get("codec_type") == "audio"), -1)


def _counted_seconds(
    ffprobe: Path,
    local: Path,
    probe: Mapping[str, Any],
    audio: Mapping[str, Any],
    *,
    codec: str,
    sample_rate: int,
    deadline: float,
) -> float:
    """Count the audio stream's packets: times a fixed packet duration when there is one, else summed."""
    index = _int(audio.get("index"))
    time_base = _fraction(audio.get("time_base"))
    frame_bytes = pcm_sample_bytes(codec) * _int(audio.get("channels"))
    if frame_bytes > 0:
        # PCM: the bytes are the samples (packet durations come from timestamps or round up the last packet).
        sized = _run_ffprobe(
            ffprobe, local, ["-select_streams", str(index), "-show_entries", "packet=size"], deadline=deadline
        )
        return sum(_int(p.get("size")) for p in sized.get("packets") or []) // frame_bytes / sample_rate
    packet_seconds = _fixed_packet_seconds(audio, codec=codec, sample_rate=sample_rate)
    if packet_seconds is None and time_base is not None:
        leading = [_int(p.get("duration")) for p in probe.get("packets") or [] if p.get("stream_index") == index]
        # A full window of equal packets (Opus frames, FLAC blocks): the encoder keeps that size throughout.
        if len(leading) == _LEADING_PACKETS and leading[0] > 0 and len(set(leading)) == 1:
            packet_seconds = float(leading[0] * time_base)
    if packet_seconds is not None:
        count = audio.get("nb_read_packets")
        if count is None:
            counted = _run_ffprobe(
                ffprobe,
                local,
                ["-count_packets", "-select_streams", str(index), "-show_entries", "stream=nb_read_packets"],
                deadline=deadline,
            )
            count = next((s.get("nb_read_packets") for s in counted.get("streams") or []), None)
        return _int(count) * packet_seconds

    listed = _run_ffprobe(
        ffprobe, local, ["-select_streams", str(index), "-show_entries", "packet=duration"], deadline=deadline
    )
    total = sum(_int(p.get("duration")) for p in listed.get("packets") or [])
    return float(total * time_base) if time_base is not None else 0.0


def _fixed_packet_seconds(audio: Mapping[str, Any], *, codec: str, sample_rate: int) -> float | None:
    samples = _SAMPLES_PER_PACKET.get(codec)
    if samples is None:
        return None
    if codec == "mp3" and sample_rate < 32000:
        samples = 576  # MPEG-2 and 2.5 layer III frames are half as long.
    if codec == "aac" and str(audio.get("profile") or "").startswith("HE-AAC"):
        samples = 2048  # SBR doubles the output rate ffprobe reports; a packet stays one core frame.
    return samples / sample_rate


def _run_ffprobe(ffprobe: Path, local: Path, args: Sequence[str], *, deadline: float) -> dict[str, Any]:
    command = [
        str(ffprobe),
        "-hide_banner",
        "-v",
        "error",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        _ALLOWED_DEMUXERS,
        "-of",
        "json",
        *args,
        # The file: prefix keeps names such as "http:x" or "concat:a|b" from being read as protocols.
        f"file:{local}",
    ]
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise InvalidAudioError("Reading the audio took too long; the file may be damaged.", param="file")
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=remaining, env=_FFPROBE_ENV, stdin=subprocess.DEVNULL, check=False
        )
    except subprocess.TimeoutExpired as exc:
        logger.warning("ffprobe timed out", extra={"timeout_sec": round(remaining, 3)})
        raise InvalidAudioError("Reading the audio took too long; the file may be damaged.", param="file") from exc
    except OSError as exc:
        # A missing or unrunnable binary is the deployment's fault, not the client's audio.
        logger.error("ffprobe could not start", extra={"error": str(exc)})
        raise InternalError("Audio metering is unavailable.") from exc
    if done.returncode != 0:
        logger.info(
            "ffprobe rejected the file",
            extra={"returncode": done.returncode, "stderr": done.stderr[-300:].decode("utf-8", "replace")},
        )
        raise InvalidAudioError(
            "The file is not readable audio: it is truncated, damaged or not an audio format.", param="file"
        )
    try:
        parsed = json.loads(done.stdout)
    except ValueError as exc:
        raise InvalidAudioError("The audio could not be read.", param="file") from exc
    return parsed if isinstance(parsed, dict) else {}


def _read_head(local: Path) -> bytes:
    try:
        with local.open("rb") as handle:
            head = handle.read(12)
    except OSError as exc:
        raise InvalidAudioError("The audio file could not be opened.", param="file") from exc
    if not head:
        raise InvalidAudioError("The audio file is empty.", param="file")
    return head


def _looks_like_mpeg_audio(head: bytes) -> bool:
    """An ID3v2 tag or an MPEG audio/ADTS frame sync (eleven set bits) at the start of the file."""
    return head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def _is_cover_art(stream: Mapping[str, Any]) -> bool:
    return bool(_int((stream.get("disposition") or {}).get("attached_pic")))


def _float(value: object) -> float | None:
    """ffprobe's numbers arrive as JSON numbers or strings, and "N/A" when unknown."""
    if not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _int(value: object) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return 0
    return 0


def _fraction(value: object) -> Fraction | None:
    try:
        fraction = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return fraction if fraction > 0 else None
