"""Duration metering with the real ffprobe, against the length PyAV actually decodes.

A client is billed for what ``meter_duration`` says, so every format a client may upload must meter to
within one codec frame of its decoded length, whatever its headers claim, and anything that is not
audio must be refused with a message that does not reveal where the file was stored.
"""

from __future__ import annotations

import io
import stat
import struct
import subprocess
import zlib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from audio_fixtures import FORMATS, audio_bytes, decoded_duration, write_audio

from earshot.config import get_settings
from earshot.errors import InternalError, InvalidAudioError
from earshot.metering import MeteredAudio, meter_duration

Generate = Callable[..., Path]

# Every format at a short and a minute-long length; the headers most likely to mislead also at 125.7 s.
LONG_FORMATS = ("wav", "mp3_vbr", "mp3_vbr_noxing", "mp3_cbr_noxing", "ogg_opus", "webm_noduration", "flac")
CASES = [
    *[(fmt, 1.3, "noise") for fmt in FORMATS],
    *[(fmt, 61.0, "tone") for fmt in FORMATS],
    *[(fmt, 125.7, "silence") for fmt in LONG_FORMATS],
]
VIDEO_FORMATS = {"mp4_video", "mpeg_video", "mpegts_video"}


def one_frame(fmt: str, sample_rate: int) -> float:
    """The longest a single frame of ``fmt``'s codec lasts: the bar metering must meet."""
    if fmt == "wav":
        return 1 / sample_rate
    if fmt.startswith("mp3") or fmt == "mpeg_video":
        return (1152 if sample_rate >= 32000 else 576) / sample_rate
    if fmt in ("m4a", "mp4_video", "mpegts_video"):
        return 1024 / sample_rate
    if fmt in ("ogg_vorbis", "webm_vorbis"):
        return 2048 / sample_rate
    if fmt == "flac":
        return 4608 / sample_rate  # the largest block ffmpeg's FLAC encoder picks
    return 0.020  # Opus


def assert_within_one_frame(fmt: str, metered: MeteredAudio, decoded: float) -> None:
    # ffprobe prints six decimals: allow for that rounding on top of the frame.
    tolerance = one_frame(fmt, metered.sample_rate) + 2e-6
    assert abs(metered.seconds - decoded) <= tolerance, (
        f"{fmt}: metered {metered.seconds:.6f}s ({metered.source}) vs decoded {decoded:.6f}s, "
        f"off by {abs(metered.seconds - decoded) * 1000:.2f} ms > {tolerance * 1000:.2f} ms"
    )


@pytest.fixture(scope="module")
def ffprobe() -> Path:
    return get_settings().resolved_ffprobe()


@pytest.fixture(scope="module")
def generate(tmp_path_factory: pytest.TempPathFactory) -> Generate:
    """``write_audio`` with a per-module cache, so each fixture file is encoded once."""
    folder = tmp_path_factory.mktemp("audio")
    made: dict[tuple[Any, ...], Path] = {}

    def make(fmt: str, seconds: float, **kw: Any) -> Path:
        key = (fmt, seconds, *sorted(kw.items()))
        if key not in made:
            made[key] = write_audio(folder / f"{len(made)}-{fmt}", fmt=fmt, seconds=seconds, **kw)
        return made[key]

    return make


def meter(path: Path, ffprobe: Path, **kw: Any) -> MeteredAudio:
    return meter_duration(path, ffprobe=ffprobe, **kw)


# --- accuracy -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "seconds", "kind"), CASES, ids=[f"{f}-{s}s-{k}" for f, s, k in CASES])
def test_metered_length_is_the_decoded_length_to_one_frame(
    fmt: str, seconds: float, kind: str, generate: Generate, ffprobe: Path
) -> None:
    path = generate(fmt, seconds, kind=kind)

    metered = meter(path, ffprobe)

    assert_within_one_frame(fmt, metered, decoded_duration(path))
    assert metered.has_video is (fmt in VIDEO_FORMATS)
    assert metered.channels >= 1
    assert metered.sample_rate > 0


@pytest.mark.parametrize(
    ("fmt", "sample_rate", "channels"),
    [
        ("mp3_vbr_noxing", 16000, 1),  # MPEG-2 layer III: 576-sample frames
        ("mp3_cbr_noxing", 22050, 2),
        ("mp3", 48000, 2),
        ("mp3_vbr", 8000, 1),  # MPEG-2.5
        ("m4a", 16000, 1),
        ("ogg_opus", 16000, 1),
        ("webm_noduration", 48000, 2),
        ("flac", 96000, 2),
        ("wav", 8000, 2),
        ("ogg_vorbis", 22050, 2),
        ("webm_vorbis", 44100, 2),
        ("mka_opus", 24000, 1),
    ],
)
def test_other_rates_and_layouts_meter_to_one_frame(
    fmt: str, sample_rate: int, channels: int, generate: Generate, ffprobe: Path
) -> None:
    path = generate(fmt, 7.77, sample_rate=sample_rate, channels=channels, kind="noise")

    metered = meter(path, ffprobe)

    assert_within_one_frame(fmt, metered, decoded_duration(path))
    assert metered.channels == channels or fmt.endswith("vorbis")


def test_vbr_mp3_without_xing_is_counted_where_ffprobe_only_estimates(generate: Generate, ffprobe: Path) -> None:
    """Given a VBR mp3 without a Xing header, ffprobe's own length is a bitrate guess; metering counts frames."""
    path = generate("mp3_vbr_noxing", 61.0, kind="tone")
    decoded = decoded_duration(path)
    guessed = float(_ffprobe_value(ffprobe, path, "format=duration"))
    assert abs(guessed - decoded) > 1.0  # the fixture really does mislead ffprobe

    metered = meter(path, ffprobe)

    assert metered.source == "frames"
    assert_within_one_frame("mp3_vbr_noxing", metered, decoded)


def test_mediarecorder_webm_without_duration_is_counted(generate: Generate, ffprobe: Path) -> None:
    path = generate("webm_noduration", 61.0, kind="tone")
    assert _ffprobe_value(ffprobe, path, "format=duration") == "N/A"

    metered = meter(path, ffprobe)

    assert metered.source == "frames"
    assert metered.codec == "opus"
    assert_within_one_frame("webm_noduration", metered, decoded_duration(path))


def test_video_files_are_metered_by_their_audio_stream(generate: Generate, ffprobe: Path) -> None:
    """The fixture's video track outlasts its audio by a second: only the audio counts."""
    path = generate("mp4_video", 61.0, kind="tone")

    metered = meter(path, ffprobe)

    assert metered.has_video is True
    assert float(_ffprobe_value(ffprobe, path, "format=duration")) > metered.seconds + 0.9
    assert_within_one_frame("mp4_video", metered, decoded_duration(path))


def test_cover_art_is_not_video(generate: Generate, ffprobe: Path, tmp_path: Path) -> None:
    path = _with_cover_art(generate("mp3_vbr", 1.3, kind="tone"), tmp_path / "cover.mp3")

    metered = meter(path, ffprobe)

    assert metered.has_video is False
    assert metered.codec == "mp3"
    assert_within_one_frame("mp3", metered, decoded_duration(path))


@pytest.mark.parametrize(
    ("data_size", "riff_size"),
    [(0xFFFFFFFF, 0xFFFFFFFF), (0, 0), (1 << 30, 1 << 30)],
    ids=["streaming-ffffffff", "zero", "claims-more-than-the-file"],
)
def test_wav_whose_header_size_lies_is_metered_from_its_data(
    data_size: int, riff_size: int, generate: Generate, ffprobe: Path, tmp_path: Path
) -> None:
    path = _patch_wav_sizes(generate("wav", 61.0, kind="tone"), tmp_path / "lying.wav", data_size, riff_size)

    metered = meter(path, ffprobe)

    assert abs(metered.seconds - 61.0) <= 1 / 44100
    assert_within_one_frame("wav", metered, decoded_duration(path))


def test_wav_whose_header_claims_less_is_metered_as_decoders_play_it(
    generate: Generate, ffprobe: Path, tmp_path: Path
) -> None:
    """ffmpeg stops at the declared data size, so that is what is billed (and what an engine hears)."""
    path = _patch_wav_sizes(generate("wav", 61.0, kind="tone"), tmp_path / "short.wav", 44100 * 2, 44100 * 2 + 36)

    metered = meter(path, ffprobe)

    assert_within_one_frame("wav", metered, decoded_duration(path))
    assert metered.seconds == pytest.approx(1.0, abs=1e-6)


def test_flac_without_total_samples_is_counted(generate: Generate, ffprobe: Path, tmp_path: Path) -> None:
    path = tmp_path / "streamed.flac"
    data = bytearray(generate("flac", 61.0, kind="tone").read_bytes())
    # STREAMINFO follows "fLaC" and its 4-byte block header; 36 bits of total samples start at byte 13.
    assert data[:4] == b"fLaC"
    data[8 + 13] &= 0xF0
    data[8 + 14 : 8 + 18] = bytes(4)
    path.write_bytes(data)
    assert _ffprobe_value(ffprobe, path, "format=duration") == "N/A"

    metered = meter(path, ffprobe)

    assert metered.source == "frames"
    assert_within_one_frame("flac", metered, decoded_duration(path))


def test_audio_bytes_round_trip(ffprobe: Path, tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.write_bytes(audio_bytes("ogg_opus", 2.5))

    assert meter(path, ffprobe).seconds == pytest.approx(2.5, abs=0.020)


# --- refusing what is not audio -------------------------------------------------------------------------


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 1, 8, 2, 0, 0, 0))  # 4x1 RGB
    pixels = chunk(b"IDAT", zlib.compress(b"\0" + bytes(12)))
    return b"\x89PNG\r\n\x1a\n" + header + pixels + chunk(b"IEND", b"")


BAD_FILES: dict[str, Callable[[Generate], bytes]] = {
    "empty": lambda _: b"",
    "random-bytes": lambda _: np.random.default_rng(7).integers(0, 256, 64_000, dtype=np.uint8).tobytes(),
    "random-bytes-after-an-mp3-sync": lambda _: b"\xff\xfb\x90\x64" + np.random.default_rng(8).bytes(64_000),
    "text": lambda _: b"This is a transcript, not the audio.\n" * 200,
    "png": lambda _: _png(),
    "truncated-m4a": lambda g: g("m4a", 61.0, kind="tone").read_bytes()[:300_000],
    "truncated-mp3-header": lambda g: g("mp3", 61.0, kind="tone").read_bytes()[:200],
    "truncated-ogg-header": lambda g: g("ogg_opus", 61.0, kind="tone").read_bytes()[:100],
    "video-without-audio": lambda _: _video_only(),
    "zero-length-wav": lambda g: g("wav", 0.0).read_bytes(),
    "zero-length-flac": lambda g: g("flac", 0.0).read_bytes(),
    "zero-length-mp3": lambda g: g("mp3", 0.0).read_bytes(),
    "zero-length-m4a": lambda g: g("m4a", 0.0).read_bytes(),
    "zero-length-ogg-opus": lambda g: g("ogg_opus", 0.0).read_bytes(),
    "zero-length-webm": lambda g: g("webm_noduration", 0.0).read_bytes(),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
@pytest.mark.parametrize("suffix", ["", ".mp3"])
def test_anything_but_audio_is_refused_without_revealing_the_path(
    name: str, suffix: str, generate: Generate, ffprobe: Path, tmp_path: Path
) -> None:
    path = tmp_path / f"upload-{name}{suffix}"
    path.write_bytes(BAD_FILES[name](generate))

    with pytest.raises(InvalidAudioError) as caught:
        meter(path, ffprobe)

    assert caught.value.message
    assert str(tmp_path) not in caught.value.message
    assert path.name not in caught.value.message


def test_a_missing_file_is_invalid_audio(ffprobe: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidAudioError):
        meter(tmp_path / "never-written.wav", ffprobe)


@pytest.mark.parametrize(
    "script",
    ["exit 1", "kill -SEGV $$", "echo 'not json'", "echo '[]'", "exec sleep 5"],
    ids=["fails", "crashes", "prints-nonsense", "prints-the-wrong-shape", "hangs"],
)
def test_ffprobe_failing_or_hanging_is_invalid_audio(
    script: str, generate: Generate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "ffprobe"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr("earshot.metering._identified_in_process", lambda local: None)  # as for any doubtful file

    with pytest.raises(InvalidAudioError):
        meter_duration(generate("mp4_video", 1.3), ffprobe=fake, timeout_sec=0.5)


def test_an_ffprobe_that_cannot_start_is_an_internal_error(
    generate: Generate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken deployment is not the client's bad audio."""
    monkeypatch.setattr("earshot.metering._identified_in_process", lambda local: None)
    with pytest.raises(InternalError):
        meter_duration(generate("mp4_video", 1.3), ffprobe=tmp_path / "no-such-ffprobe")


# --- local files only -----------------------------------------------------------------------------------


@pytest.fixture
def ffprobe_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every argv meter_duration hands to ffprobe (the real one still runs)."""
    calls: list[list[str]] = []
    real_run = subprocess.run

    def recording_run(command: list[str], *args: Any, **kw: Any) -> Any:
        assert not kw.get("shell"), "ffprobe must never go through a shell"
        calls.append(list(command))
        return real_run(command, *args, **kw)

    monkeypatch.setattr("earshot.metering.subprocess.run", recording_run)
    return calls


@pytest.mark.parametrize(("fmt", "in_process"), [("mp3_vbr", True), ("mp4_video", False)])
@pytest.mark.parametrize(
    "name", ["http:example.com/a.mp3", "concat:one.mp3|two.mp3", "https:%2F%2Fexample.com", "-i.mp3", "data:,x"]
)
def test_names_that_look_like_protocols_are_read_as_local_files(
    name: str,
    fmt: str,
    in_process: bool,
    generate: Generate,
    ffprobe: Path,
    ffprobe_calls: list[list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given a local file named like a URL (and the files a concat: URL would join), only that file is read, whether
    it is identified in-process or (as any file its checks doubt) by ffprobe."""
    if not in_process:
        monkeypatch.setattr("earshot.metering._identified_in_process", lambda local: None)
    monkeypatch.chdir(tmp_path)
    for part in ("one.mp3", "two.mp3"):
        (tmp_path / part).write_bytes(generate(fmt, 61.0, kind="tone").read_bytes())
    relative = Path(name)
    relative.parent.mkdir(parents=True, exist_ok=True)
    relative.write_bytes(generate(fmt, 1.3, kind="noise").read_bytes())

    metered = meter(relative, ffprobe)

    assert_within_one_frame(fmt, metered, decoded_duration(tmp_path / name))
    assert bool(ffprobe_calls) != in_process  # read in-process: only the file's own bytes
    for command in ffprobe_calls:
        assert command[command.index("-protocol_whitelist") + 1] == "file"
        assert command[-1] == f"file:{(tmp_path / name).resolve()}"
        assert all(not arg.startswith(("http", "concat:", "data:")) for arg in command[:-1])


def test_playlists_that_would_open_other_files_are_refused(generate: Generate, ffprobe: Path, tmp_path: Path) -> None:
    target = generate("mp3_vbr", 61.0, kind="tone")
    playlist = tmp_path / "list.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:61\n#EXTINF:61,\n{target}\n#EXT-X-ENDLIST\n")

    with pytest.raises(InvalidAudioError):
        meter(playlist, ffprobe)


def test_ffprobe_runs_once_unless_packets_must_be_counted(
    generate: Generate, ffprobe: Path, ffprobe_calls: list[list[str]]
) -> None:
    """WAV, FLAC, MPEG audio, Ogg, m4a/mp4 (AAC, with or without video), WebM and MPEG program/transport streams are
    identified in-process (no ffprobe); other walked formats take one ffprobe process (it only says what the file is);
    counted ones two."""
    for fmt in FORMATS:
        ffprobe_calls.clear()
        metered = meter(generate(fmt, 1.3, kind="noise"), ffprobe)
        in_process = fmt.startswith(("wav", "flac", "mp3", "ogg", "m4a", "webm", "mp4", "mpeg"))
        expected = 0 if in_process else 1 if metered.source == "frames" else 2
        assert len(ffprobe_calls) == expected, (fmt, metered.source, ffprobe_calls)


# --- helpers --------------------------------------------------------------------------------------------


def _ffprobe_value(ffprobe: Path, path: Path, entry: str) -> str:
    """What ffprobe alone reports, to show a fixture really carries the trap it is meant to."""
    done = subprocess.run(
        [str(ffprobe), "-v", "error", "-show_entries", entry, "-of", "default=nw=1:nk=1", f"file:{path}"],
        capture_output=True,
        text=True,
        check=True,
        env={"GCONV_PATH": "/nonexistent"},
    )
    return done.stdout.strip()


def _patch_wav_sizes(source: Path, target: Path, data_size: int, riff_size: int) -> Path:
    data = bytearray(source.read_bytes())
    at = data.index(b"data")
    data[4:8] = struct.pack("<I", riff_size)
    data[at + 4 : at + 8] = struct.pack("<I", data_size)
    target.write_bytes(data)
    return target


def _with_cover_art(source: Path, target: Path) -> Path:
    """Remux an mp3 with a PNG front cover, which ffprobe lists as a video stream marked attached_pic."""
    with av.open(str(source)) as src, av.open(str(target), "w", format="mp3") as out:
        audio: Any = out.add_stream_from_template(src.streams.audio[0])
        cover: Any = out.add_stream("png", rate=1)
        cover.width, cover.height, cover.pix_fmt = 16, 16, "rgb24"
        cover.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), dtype=np.uint8), format="rgb24")
        picture.pts = 0
        for packet in [*cover.encode(picture), *cover.encode(None)]:
            packet.stream = cover
            out.mux(packet)
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = audio
                out.mux(packet)
    return target


def _video_only() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as out:
        video: Any = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        for index in range(20):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), dtype=np.uint8), format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, 10)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return buffer.getvalue()
