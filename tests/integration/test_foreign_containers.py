"""FLV and AVI metered in-process from the audio they hold: AAC and MP3 in FLV, MP3 and PCM in AVI.

Every file is encoded here with PyAV, then made hostile byte by byte: headers claiming ten hours or one second
(FLV's ``onMetaData`` duration and tag timestamps; AVI's main header, stream headers and OpenDML totals), cuts at 40 %
and 75 %, junk inside and after, no audio at all. The metered length is held to what PyAV decodes: equal on intact
files, never more and at most one frame less where a cut or junk breaks a tag (PyAV's ffmpeg hands a broken FLV tag to
the decoder; ffprobe's drops it, as the walk does).
"""

from __future__ import annotations

import mmap
import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from audio_fixtures import (
    decoded_duration,
    decoded_tolerantly,
    encode_tone,
    ffprobe_names,
    metered,
    metered_in_process,
    written,
)
from hostile_audio import claim_seconds, mutated, truncate

from earshot.audio.lengths.avi import avi_length
from earshot.audio.lengths.common import AudioLength
from earshot.audio.lengths.flv import flv_length
from earshot.audio.lengths.identify import identify
from earshot.errors import InvalidAudioError

TEN_HOURS = 36_000.0
# name -> (container, encoder, rate, samples per frame)
RECIPES = {
    "flv_aac": ("flv", "aac", 44_100, 1024),
    "flv_mp3": ("flv", "libmp3lame", 44_100, 1152),
    "avi_mp3": ("avi", "libmp3lame", 44_100, 1152),
    "avi_pcm": ("avi", "pcm_s16le", 44_100, 1),
}
WALKERS = {"flv": flv_length, "avi": avi_length}


_meter, _write = metered, written


def _frame(name: str) -> float:
    _, _, rate, samples = RECIPES[name]
    return samples / rate


def _decoded_tolerantly(path: Path) -> float:
    samples, rate = decoded_tolerantly(path)
    return samples / rate if rate else 0.0


def _with_video(path: Path, container: str, audio_codec: str, video_codec: str, rate: int, channels: int) -> Path:
    """Four seconds of tone with a 10 fps picture stream interleaved."""
    seconds, layout = 4.0, "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w", format=container) as out:
        video = out.add_stream(video_codec, rate=10)
        audio = out.add_stream(audio_codec, rate=rate)
        assert isinstance(video, av.VideoStream) and isinstance(audio, av.AudioStream)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio.layout = layout
        total, shown = int(seconds * rate), 0
        for offset in range(0, total, 4096):
            count = min(4096, total - offset)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(offset, offset + count) / rate)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.tile(tone, (channels, 1)), format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, offset, Fraction(1, rate)
            out.mux(audio.encode(frame))
            while shown * rate < (offset + count) * 10:
                picture = av.VideoFrame.from_ndarray(np.full((64, 64, 3), shown % 256, np.uint8), format="rgb24")
                picture.pts, picture.time_base = shown, Fraction(1, 10)
                out.mux(video.encode(picture))
                shown += 1
        out.mux(audio.encode(None))
        out.mux(video.encode(None))
    return path


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, bytes]]:
    """(3 s, 100 s) of tone per recipe."""
    folder = tmp_path_factory.mktemp("foreign")
    return {
        name: tuple(  # type: ignore[misc]
            encode_tone(folder / f"{name}-{seconds}.{container}", container, codec, seconds, rate).read_bytes()
            for seconds in (3.0, 100.0)
        )
        for name, (container, codec, rate, _) in RECIPES.items()
    }


@pytest.mark.parametrize("name", RECIPES)
def test_flv_and_avi_are_metered_in_process_as_decoded(
    name: str, encoded: dict[str, tuple[bytes, bytes]], tmp_path: Path
) -> None:
    for index, data in enumerate(encoded[name]):
        path = _write(tmp_path, f"{index}.{RECIPES[name][0]}", data)
        assert metered_in_process(path).seconds == pytest.approx(decoded_duration(path), abs=1e-9)


@pytest.mark.parametrize(
    ("container", "audio_codec", "video_codec", "rate", "channels"),
    [
        ("flv", "aac", "flv", 44_100, 1),
        ("flv", "aac", "flv", 16_000, 2),
        ("flv", "libmp3lame", "flv", 22_050, 2),
        ("flv", "libmp3lame", None, 11_025, 1),
        ("avi", "libmp3lame", "mpeg4", 32_000, 2),
        ("avi", "pcm_s16le", "mpeg4", 16_000, 2),
        ("avi", "pcm_u8", None, 8000, 1),
        ("avi", "pcm_s24le", None, 48_000, 1),
        ("avi", "pcm_f32le", None, 22_050, 1),
    ],
)
def test_other_rates_layouts_and_video_streams_are_named_and_metered_as_ffprobe_and_pyav_see_them(
    container: str, audio_codec: str, video_codec: str | None, rate: int, channels: int, tmp_path: Path
) -> None:
    path = tmp_path / f"a.{container}"
    if video_codec is None:
        if channels != 1:
            pytest.fail("encode_tone writes mono")
        encode_tone(path, container, audio_codec, 4.0, rate)
    else:
        _with_video(path, container, audio_codec, video_codec, rate, channels)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        found = identify(data)
    assert found is not None
    assert (found.format_name, found.codec, found.sample_rate, found.channels) == ffprobe_names(path)
    assert found.has_video == (video_codec is not None)
    assert _meter(path).seconds == pytest.approx(decoded_duration(path), abs=1e-9)


@pytest.mark.parametrize("name", RECIPES)
def test_headers_claiming_ten_hours_or_one_second_bill_the_audio_present(
    name: str, encoded: dict[str, tuple[bytes, bytes]], tmp_path: Path
) -> None:
    short, long = encoded[name]
    kind = RECIPES[name][0]
    honest_short = decoded_duration(_write(tmp_path, f"s.{kind}", short))
    honest_long = decoded_duration(_write(tmp_path, f"l.{kind}", long))
    claiming_hours = _write(tmp_path, f"hours.{kind}", claim_seconds(short, kind, TEN_HOURS))
    claiming_a_second = _write(tmp_path, f"second.{kind}", claim_seconds(long, kind, 1.0))
    assert claiming_hours.read_bytes() != short and claiming_a_second.read_bytes() != long
    assert _meter(claiming_hours).seconds == pytest.approx(honest_short, abs=1e-9)
    assert _meter(claiming_a_second).seconds == pytest.approx(honest_long, abs=1e-9)


@pytest.mark.parametrize("fraction", [0.4, 0.75])
@pytest.mark.parametrize("name", RECIPES)
def test_a_cut_file_bills_what_decodes(
    name: str, fraction: float, encoded: dict[str, tuple[bytes, bytes]], tmp_path: Path
) -> None:
    cut = _write(tmp_path, f"cut.{RECIPES[name][0]}", truncate(encoded[name][1], fraction))
    metered = _meter(cut)
    played = _decoded_tolerantly(cut)
    assert metered.source == "frames"
    assert 90 * fraction <= metered.seconds <= 110 * fraction  # the bytes of a tone encode about evenly
    # An FLV tag cut short is not billed (PyAV may decode a frame of it); AVI's cut chunk plays what is left of it.
    assert played - _frame(name) - 1e-9 <= metered.seconds <= played + 1e-9


@pytest.mark.parametrize("where", ["inside", "after"])
@pytest.mark.parametrize("name", RECIPES)
def test_junk_adds_nothing(name: str, where: str, encoded: dict[str, tuple[bytes, bytes]], tmp_path: Path) -> None:
    original = encoded[name][1]
    junk = bytes(range(256)) * 64
    middle = len(original) // 2
    data = original[:middle] + junk + original[middle:] if where == "inside" else original + junk
    path = _write(tmp_path, f"junk.{RECIPES[name][0]}", data)
    honest = decoded_duration(_write(tmp_path, f"honest.{RECIPES[name][0]}", original))
    metered = _meter(path).seconds
    assert honest - 2 * _frame(name) - 1e-9 <= metered <= honest + 1e-9
    played = _decoded_tolerantly(path)
    assert played - _frame(name) - 1e-9 <= metered <= played + _frame(name) + 1e-9


@pytest.mark.parametrize("name", RECIPES)
def test_a_file_without_audio_is_refused_unbilled(
    name: str, encoded: dict[str, tuple[bytes, bytes]], tmp_path: Path
) -> None:
    short = encoded[name][0]
    if RECIPES[name][0] == "flv":
        # The header, onMetaData (claiming its three seconds) and, for AAC, the sequence header: no frame.
        end = 13
        for _ in range(2 if name == "flv_aac" else 1):
            end += 15 + int.from_bytes(short[end + 1 : end + 4], "big")
        empty = short[:end]
    else:
        empty = short[: short.index(b"movi") + 4]  # every header, an empty movi list
    with pytest.raises(InvalidAudioError):
        _meter(_write(tmp_path, f"empty.{RECIPES[name][0]}", empty))
    junk_only = empty + random.Random(7).randbytes(20_000)
    try:
        metered = _meter(_write(tmp_path, f"junk.{RECIPES[name][0]}", junk_only)).seconds
    except InvalidAudioError:
        return
    # Random bytes after the headers: what they bill is what PyAV makes of them (PCM plays any bytes it is given).
    assert metered <= _decoded_tolerantly(tmp_path / f"junk.{RECIPES[name][0]}") + 1e-9


@pytest.mark.parametrize("name", RECIPES)
def test_random_mutations_never_raise_or_bill_more_than_the_file_held(
    name: str, encoded: dict[str, tuple[bytes, bytes]], tmp_path: Path
) -> None:
    """Bit flips, overwritten spans, inserted and removed bytes: the walk ends, and it never counts more than the
    original's samples plus one frame (PCM: plus the chunk headers a lying size swallows into one chunk). The compiled
    walk (``walkers.c``) and the numpy one give the same length on every file."""
    container, _, _, frame = RECIPES[name]
    original = encoded[name][0]
    honest = _walk(original, tmp_path, container, name)
    assert honest is not None and honest.samples > 0
    allowance = frame if frame > 1 else len(original) // 2 - honest.samples
    rng = random.Random(11)
    for _ in range(300):
        damaged = mutated(original, rng)
        length = _walk(damaged, tmp_path, container, name)
        assert _walk(damaged, tmp_path, container, name, native=False) == length
        if length is not None:
            assert 0 <= length.samples <= honest.samples + allowance


@pytest.mark.parametrize("name", RECIPES)
def test_the_compiled_and_lockstep_walks_visit_exactly_the_records_a_sequential_walk_visits(
    name: str, encoded: dict[str, tuple[bytes, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from earshot.audio.lengths import avi, compiled, flv

    container = RECIPES[name][0]
    rng = random.Random(5)
    originals = [encoded[name][1], truncate(encoded[name][1], 0.6)]
    assert compiled.compiled_walkers() is not None, "make setup builds the compiled walkers"
    for round_ in range(12):
        data = bytearray(rng.choice(originals))
        for _ in range(round_ % 5):
            at = rng.randrange(len(data))
            data[at : at + rng.randint(1, 40)] = rng.randbytes(rng.randint(0, 80))
        path = _write(tmp_path, f"chain.{container}", bytes(data))
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            if container == "flv":
                reference = flv._tags(mapped, 13, sequential=True)
                assert np.array_equal(flv._tags(mapped, 13), reference)  # walkers.c
                with monkeypatch.context() as patched:
                    patched.setattr(compiled, "compiled_walkers", lambda: None)
                    assert np.array_equal(flv._tags(mapped, 13), reference)  # chains.chain (numpy)
                continue
            layout = avi._layout(mapped)
            if layout is None:
                continue
            expected = avi._audio_chunks(mapped, layout, limit=len(mapped), sequential=True)
            walks = [avi._audio_chunks(mapped, layout, limit=len(mapped))]
            with monkeypatch.context() as patched:
                patched.setattr(compiled, "compiled_walkers", lambda: None)
                walks.append(avi._audio_chunks(mapped, layout, limit=len(mapped)))
            for walked in walks:
                assert (walked is None) == (expected is None)
                if walked is not None and expected is not None:
                    assert all(np.array_equal(a, b) for a, b in zip(walked, expected, strict=True))


@pytest.mark.parametrize("name", ["flv_mp3", "avi_mp3"])
def test_the_compiled_walk_checks_the_stream_it_expected_and_walks_again_when_wrong(
    name: str, encoded: dict[str, tuple[bytes, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The C walk tests each tag or chunk against the frame sizes of the stream the first audio payload seems to open
    (read before the walk); a wrong expectation (another sample rate's table, or none) costs a second walk, never a
    different length."""
    from earshot.audio.lengths import avi, flv

    container = RECIPES[name][0]
    data = encoded[name][1]
    honest = _walk(data, tmp_path, container, name)
    assert honest is not None and honest.samples > 0
    at_48k = int.from_bytes(b"\xff\xfb\x94\x64", "big") & 0xFFFE0C00  # MPEG-1 layer III at 48 kHz: other sizes
    module, guess = (flv, "_expected_mp3_reference") if container == "flv" else (avi, "expected_mp3_reference")
    for wrong in (at_48k, None):
        monkeypatch.setattr(module, guess, lambda *args, wrong=wrong: wrong)
        assert _walk(data, tmp_path, container, name) == honest
        assert _walk(truncate(data, 0.6), tmp_path, container, name) == _walk(
            truncate(data, 0.6), tmp_path, container, name, native=False
        )


@pytest.mark.parametrize("size", [1, 7, 8, 9, 16, 23, 1000])
def test_bytes_at_any_offset_read_as_the_file_holds_them(size: int, tmp_path: Path) -> None:
    from earshot.audio.lengths.chains import Bytes

    data = random.Random(size).randbytes(size)
    path = _write(tmp_path, "bytes.bin", data)
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        read = Bytes(mapped)
        at = np.arange(size, dtype=np.int64)[::-1]
        padded = [data[offset : offset + 8].ljust(8, b"\0") for offset in at.tolist()]
        assert read.little(at).tolist() == [int.from_bytes(eight, "little") for eight in padded]
        assert read.big(at).tolist() == [int.from_bytes(eight, "big") for eight in padded]
        del read  # its views of the mapping must go before the mapping closes


def test_an_avi_index_that_lies_changes_nothing(encoded: dict[str, tuple[bytes, bytes]], tmp_path: Path) -> None:
    """idx1 only spares the walk: entries pointing elsewhere, sizes inflated, entries dropped or repeated are each
    checked against the chunk found there."""
    import struct

    original = encoded["avi_pcm"][1]
    honest = _meter(_write(tmp_path, "honest.avi", original)).seconds
    index = original.index(b"idx1")
    count = struct.unpack_from("<I", original, index + 4)[0] // 16
    rng = random.Random(3)
    for _ in range(6):
        lying = bytearray(original)
        for entry in rng.sample(range(count), 20):
            at = index + 8 + 16 * entry
            field = rng.choice((8, 12))  # the offset or the size
            struct.pack_into("<I", lying, at + field, rng.randrange(1 << 24))
        assert _meter(_write(tmp_path, "lying.avi", bytes(lying))).seconds == honest
    dropped = original[: index + 8 + 16 * (count // 2)] + original[index + 8 + 16 * count :]
    assert _meter(_write(tmp_path, "dropped.avi", dropped)).seconds == honest


def _walk(data: bytes, tmp_path: Path, container: str, name: str, *, native: bool = True) -> AudioLength | None:
    """The walker's length of ``data``; ``native=False``: with the numpy walks (the compiled library set aside)."""
    from earshot.audio.lengths import compiled

    path = _write(tmp_path, f"fuzz.{container}", data)
    _, codec, rate, _ = RECIPES[name]
    with pytest.MonkeyPatch.context() as patched:
        if not native:
            patched.setattr(compiled, "compiled_walkers", lambda: None)
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return WALKERS[container](mapped, "mp3" if codec == "libmp3lame" else codec, rate)
