"""Containers beyond the audio-only ones, metered in-process from the audio actually present: mp4/mov with a video
track, other codecs in mp4 (ADPCM, AMR), CAF, MPEG program and transport streams.

Every file is encoded here with PyAV and then made hostile byte by byte: a header claiming ten hours or one second,
a cut at 40 %, junk. The metered length must be what PyAV decodes, to one codec frame, whatever the headers say.
"""

from __future__ import annotations

import mmap
import random
from pathlib import Path

import av
import pytest
from audio_fixtures import decoded_duration, write_audio
from hostile_audio import claim_seconds, truncate

from earshot.audio.lengths.identify import identify
from earshot.config import get_settings
from earshot.errors import InvalidAudioError
from earshot.metering import MeteredAudio, meter_duration

TEN_HOURS = 36_000.0
AAC_FRAME = 1024 / 44100


def _meter(path: Path) -> MeteredAudio:
    return meter_duration(path, ffprobe=get_settings().resolved_ffprobe())


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _decoded_tolerantly(path: Path) -> float:
    """Seconds PyAV decodes from the first audio stream, skipping packets the decoder rejects (a cut file's last)."""
    samples = rate = 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue
            for frame in frames:
                samples, rate = samples + frame.samples, frame.sample_rate
    return samples / rate if rate else 0.0


def _identified(path: Path) -> bool:
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return identify(data) is not None


# --- mp4 with a video track ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mp4_video(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A 20 s tone as mp4 with a video track, its sample table first ("faststart") and last (PyAV's default)."""
    folder = tmp_path_factory.mktemp("mp4_video")
    return {
        fmt: write_audio(folder / fmt, fmt=fmt, seconds=20.0, kind="noise").read_bytes()
        for fmt in ("mp4_video", "mp4_video_faststart")
    }


@pytest.mark.parametrize("fmt", ["mp4_video", "mp4_video_faststart"])
def test_mp4_with_video_is_metered_in_process_by_its_audio_track(
    fmt: str, mp4_video: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "a.mp4", mp4_video[fmt])
    monkeypatch.setattr("earshot.metering._run_ffprobe", _no_ffprobe)
    metered = _meter(path)
    assert (metered.source, metered.codec, metered.has_video) == ("frames", "aac", True)
    assert abs(metered.seconds - decoded_duration(path)) <= AAC_FRAME


@pytest.mark.parametrize("fmt", ["mp4_video", "mp4_video_faststart"])
@pytest.mark.parametrize("claim", [TEN_HOURS, 1.0])
def test_mp4_with_video_whose_headers_lie_bills_its_audio_samples(
    fmt: str, claim: float, mp4_video: dict[str, bytes], tmp_path: Path
) -> None:
    """mvhd, mdhd, stts and the edit list of both tracks claim ``claim`` seconds."""
    honest = _write(tmp_path, "honest.mp4", mp4_video[fmt])
    lying = _write(tmp_path, "lying.mp4", claim_seconds(mp4_video[fmt], "mp4_video", claim))
    assert _identified(lying)
    assert abs(_meter(lying).seconds - decoded_duration(honest)) <= 2 * AAC_FRAME


def test_a_cut_mp4_with_video_bills_the_audio_left(mp4_video: dict[str, bytes], tmp_path: Path) -> None:
    cut = _write(tmp_path, "cut.mp4", truncate(mp4_video["mp4_video_faststart"], 0.4))
    metered = _meter(cut).seconds
    assert 6.0 <= metered <= 10.0
    assert abs(metered - _decoded_tolerantly(cut)) <= 2 * AAC_FRAME
    # The sample table written last: a cut file has none, nothing decodes, and nothing is billed.
    with pytest.raises(InvalidAudioError):
        _meter(_write(tmp_path, "cut-end.mp4", truncate(mp4_video["mp4_video"], 0.4)))


def test_junk_in_an_mp4_with_video_adds_nothing(mp4_video: dict[str, bytes], tmp_path: Path) -> None:
    original = mp4_video["mp4_video_faststart"]
    honest = _meter(_write(tmp_path, "honest.mp4", original)).seconds
    junk = random.Random(3).randbytes(200_000)
    assert _meter(_write(tmp_path, "tail.mp4", original + junk)).seconds == honest
    # Junk written over the media data: the same samples are there (however they decode), no more.
    middle = len(original) // 2
    overwritten = original[:middle] + junk[:10_000] + original[middle + 10_000 :]
    assert _meter(_write(tmp_path, "over.mp4", overwritten)).seconds == honest


def _no_ffprobe(*args: object, **kwargs: object) -> dict[str, object]:
    raise AssertionError("ffprobe was started for a file identified in-process")
