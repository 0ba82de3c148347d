"""Codecs the first hostile corpora missed: Matroska with ALAC or WavPack (was refused as holding no samples),
WavPack files whose blocks state more samples than they hold (billed what they stated), and Ogg Opus whose last
granule position is destroyed (billed the encoder's end padding: a 60 s file billed 2 minutes).

Each file is encoded here with PyAV, patched byte by byte (``hostile_audio``), metered, and compared with what
PyAV's decoder makes of it.
"""

from __future__ import annotations

import mmap
import random
from pathlib import Path

import av
import pytest
from audio_fixtures import audio_bytes, decoded_duration, decoded_tolerantly, encode_tone
from hostile_audio import claim_seconds, inflate_wavpack_blocks, set_last_granule, truncate

from earshot.config import get_settings
from earshot.errors import InvalidAudioError
from earshot.metering import meter_duration

TEN_HOURS = 36_000.0
RATE = 16_000
# One frame of each: ALAC 4096 samples; ffmpeg's WavPack blocks at 16 kHz are 64000 samples (4 s).
CODECS = {("matroska", "alac"): 4096 / RATE, ("matroska", "wavpack"): 64000 / RATE, ("wv", "wavpack"): 64000 / RATE}


def _played(path: Path) -> float:
    """What PyAV decodes of a cut file up to where its demuxer stops (at the cut block, for WavPack, with an error)."""
    samples = 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        try:
            for frame in container.decode(stream):
                samples += frame.samples
        except av.error.FFmpegError:  # the demuxer or decoder stops at the damage
            pass
        return samples / stream.codec_context.sample_rate


def _meter(path: Path) -> float:
    return meter_duration(path, ffprobe=get_settings().resolved_ffprobe()).seconds


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[bytes, bytes]]:
    """(3 s, 100 s) of tone per (container, codec)."""
    folder = tmp_path_factory.mktemp("codecs")
    return {
        (container, codec): tuple(  # type: ignore[misc]
            encode_tone(folder / f"{codec}-{seconds}.{container}", container, codec, seconds, RATE).read_bytes()
            for seconds in (3.0, 100.0)
        )
        for container, codec in CODECS
    }


@pytest.mark.parametrize(("container", "codec"), list(CODECS))
def test_matroska_and_wavpack_files_bill_their_blocks_whatever_the_header_claims(
    container: str, codec: str, encoded: dict[tuple[str, str], tuple[bytes, bytes]], tmp_path: Path
) -> None:
    short, long = encoded[container, codec]
    lie = "wv" if container == "wv" else "mka"
    honest = _write(tmp_path, "honest", short)
    assert _meter(honest) == pytest.approx(decoded_duration(honest), abs=1e-6) == pytest.approx(3.0, abs=1e-6)

    claiming_hours = _write(tmp_path, "hours", claim_seconds(short, lie, TEN_HOURS))
    assert _meter(claiming_hours) == pytest.approx(3.0, abs=1e-6)
    claiming_a_second = _write(tmp_path, "second", claim_seconds(long, lie, 1.0))
    assert _meter(claiming_a_second) == pytest.approx(100.0, abs=1e-6)


@pytest.mark.parametrize(("container", "codec"), list(CODECS))
def test_a_cut_matroska_or_wavpack_file_bills_the_blocks_left(
    container: str, codec: str, encoded: dict[tuple[str, str], tuple[bytes, bytes]], tmp_path: Path
) -> None:
    cut = _write(tmp_path, "cut", truncate(encoded[container, codec][1], 0.4))
    metered = _meter(cut)
    assert 40.0 - CODECS[container, codec] <= metered <= 40.0
    assert metered == pytest.approx(_played(cut), abs=1e-6)  # no partial block is billed or played
    junk = _write(tmp_path, "junk", encoded[container, codec][1] + bytes(range(256)) * 64)
    assert _meter(junk) == pytest.approx(100.0, abs=1e-6)


def test_an_alac_cookie_claiming_longer_frames_is_refused(
    encoded: dict[tuple[str, str], tuple[bytes, bytes]], tmp_path: Path
) -> None:
    """ALAC frames play the cookie's frame length: a cookie claiming 16x longer frames decodes nothing."""
    short = encoded["matroska", "alac"][0]
    cookie = short.index((4096).to_bytes(4, "big") + b"\0")
    lying = _write(tmp_path, "lying.mka", short[:cookie] + (65536).to_bytes(4, "big") + short[cookie + 4 :])
    with pytest.raises(Exception):  # noqa: B017 - PyAV's decoder refuses it outright
        decoded_duration(lying)
    with pytest.raises(InvalidAudioError):
        _meter(lying)


@pytest.mark.parametrize(("factor", "blocks"), [(2.0, [1]), (1.5, [-1]), (1.01, [0, 2])])
def test_wavpack_blocks_stating_more_samples_than_the_stream_bill_the_streams_block(
    factor: float, blocks: list[int], encoded: dict[tuple[str, str], tuple[bytes, bytes]], tmp_path: Path
) -> None:
    """ffmpeg's decoder makes up the samples an inflated block states (so PyAV "decodes" them); the bill does not."""
    long = encoded["wv", "wavpack"][1]
    lying = _write(tmp_path, "lying.wv", inflate_wavpack_blocks(long, factor, blocks))
    assert decoded_duration(lying) > 100.0
    assert _meter(lying) == pytest.approx(100.0, abs=1e-6)


def test_wavpack_blocks_over_the_decoders_limit_are_refused(
    encoded: dict[tuple[str, str], tuple[bytes, bytes]], tmp_path: Path
) -> None:
    lying = _write(tmp_path, "lying.wv", inflate_wavpack_blocks(encoded["wv", "wavpack"][1], 10.0))
    with pytest.raises(Exception):  # noqa: B017 - the decoder refuses blocks of more than 150,000 samples
        decoded_duration(lying)
    with pytest.raises(InvalidAudioError):
        _meter(lying)


@pytest.mark.parametrize("granule", [-1, 0, 2**40])
def test_ogg_opus_whose_last_granule_is_destroyed_bills_whole_packets_not_its_padding(
    granule: int, tmp_path: Path
) -> None:
    honest = audio_bytes("ogg_opus", 60.0)
    assert _meter(_write(tmp_path, "honest.opus", honest)) == pytest.approx(60.0, abs=1e-6)
    destroyed = _write(tmp_path, "destroyed.opus", set_last_granule(honest, granule))
    metered = _meter(destroyed)
    assert 60.0 - 0.020 <= metered < 60.0  # one minute, exact to one packet, none of the 13 ms of padding
    if granule >= 0:  # (PyAV refuses a last page without a granule position)
        assert metered <= decoded_duration(destroyed)


# --- formats that went to ffprobe: raw AAC/AC-3/E-AC-3 streams and PCM in AU, AIFF and Wave64 -----------------------
ELEMENTARY = {("adts", "aac", RATE): 1024 / RATE, ("ac3", "ac3", 48_000): 1536 / 48_000}
ELEMENTARY |= {("eac3", "eac3", 48_000): 1536 / 48_000, ("amr", "libopencore_amrnb", 8000): 160 / 8000}
PCM = {("au", "pcm_s16be", RATE): 1 / RATE, ("aiff", "pcm_s16be", RATE): 1 / RATE, ("w64", "pcm_s16le", RATE): 1 / RATE}


def _identified_in_process(path: Path) -> bool:
    import mmap

    from earshot.audio.lengths.identify import identify

    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return identify(data) is not None


@pytest.fixture(scope="module")
def streams(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, int], tuple[bytes, bytes]]:
    """(3 s, 100 s) of tone per (container, codec, rate)."""
    folder = tmp_path_factory.mktemp("streams")
    return {
        (container, codec, rate): tuple(  # type: ignore[misc]
            encode_tone(folder / f"{codec}-{seconds}.{container}", container, codec, seconds, rate).read_bytes()
            for seconds in (3.0, 100.0)
        )
        for container, codec, rate in ELEMENTARY | PCM
    }


@pytest.mark.parametrize("recipe", list(ELEMENTARY | PCM))
def test_raw_streams_and_pcm_containers_are_metered_in_process_as_decoded(
    recipe: tuple[str, str, int], streams: dict[tuple[str, str, int], tuple[bytes, bytes]], tmp_path: Path
) -> None:
    short, long = streams[recipe]
    for name, data in (("short", short), ("long", long)):
        path = _write(tmp_path, name, data)
        assert _identified_in_process(path)
        assert _meter(path) == pytest.approx(decoded_duration(path), abs=1e-6)
    # Junk after the last frame is not audio. PCM in AU reads to the end of the file, and AMR has no sync word (junk
    # whose bytes parse as speech frames decodes as such, up to the first it refuses): there it plays, and is billed.
    # The last frame before junk is not billed (a frame followed by anything but another frame may be the one junk was
    # inserted into): ffmpeg's AC-3 parser glues the junk to it and drops it, its ADTS demuxer plays it. Never more
    # than decodes, one frame less at most.
    junk = _write(tmp_path, "junk", long + bytes(range(256)) * 64)
    frame = (ELEMENTARY | PCM)[recipe]
    if recipe[0] in ("au", "amr"):
        assert _meter(junk) == pytest.approx(_played(junk), abs=1e-6)
    elif recipe[0] in ("adts", "ac3", "eac3"):
        assert _meter(junk) == pytest.approx(_meter(_write(tmp_path, "honest", long)) - frame, abs=1e-6)
        assert _played(junk) - frame - 1e-6 <= _meter(junk) <= _played(junk) + 1e-6
    else:
        assert _meter(junk) == pytest.approx(_meter(_write(tmp_path, "honest", long)), abs=1e-6)
        assert abs(_meter(junk) - _played(junk)) <= frame + 1e-6


@pytest.mark.parametrize("recipe", list(ELEMENTARY | PCM))
def test_a_cut_raw_stream_or_pcm_file_bills_what_decodes(
    recipe: tuple[str, str, int], streams: dict[tuple[str, str, int], tuple[bytes, bytes]], tmp_path: Path
) -> None:
    cut = _write(tmp_path, "cut", truncate(streams[recipe][1], 0.4))
    metered = _meter(cut)
    assert 39.9 <= metered <= 40.1
    assert metered == pytest.approx(_played(cut), abs=1e-6)


@pytest.mark.parametrize("recipe", list(PCM))
@pytest.mark.parametrize("claim", [TEN_HOURS, 1.0])
def test_pcm_containers_whose_sizes_lie_bill_what_the_demuxer_plays(
    recipe: tuple[str, str, int],
    claim: float,
    streams: dict[tuple[str, str, int], tuple[bytes, bytes]],
    tmp_path: Path,
) -> None:
    """A size larger than the file is never believed; a smaller one where ffmpeg stops there (AIFF, Wave64) is
    where the engine stops too, and is billed; AU's data size is ignored by the demuxer, so by the bill."""
    lying = _write(tmp_path, "lying", claim_seconds(streams[recipe][1], recipe[0], claim))
    try:
        played = _played(lying)
    except av.error.InvalidDataError:
        with pytest.raises(InvalidAudioError):
            _meter(lying)
        return
    assert _meter(lying) == pytest.approx(played, abs=1e-6)
    assert _meter(lying) <= 100.0


# --- raw ADTS, AC-3, E-AC-3 with damage inside: ffmpeg's resume rule -------------------------------------------------
def _decoded_samples(path: Path) -> int:
    return decoded_tolerantly(path)[0]


def _damaged(data: bytes, head: bytes, seed: int) -> dict[str, bytes]:
    """Structural damage mid-file: junk inserted (random, zeros, holding a false sync of the stream or an ADTS sync of
    size 0), bytes cut, a header's size bits flipped, trailing junk, and a few random insertions and cuts."""
    rng = random.Random(seed)
    middle = len(data) // 2
    false_sync = rng.randbytes(100) + head + rng.randbytes(600)
    size_zero = rng.randbytes(100) + b"\xff\xf1\x50\x80\x00\x1f\xfc" + rng.randbytes(600)
    header = data.find(head[:2], middle)
    flipped = bytearray(data)
    flipped[header + 4] ^= 0x10  # the size (ADTS: bits of aac_frame_length; AC-3: bits of frmsizecod)
    variants = {
        "junk": data[:middle] + rng.randbytes(777) + data[middle:],
        "zeros": data[:middle] + bytes(500) + data[middle:],
        "cut": data[:middle] + data[middle + 50 :],
        "false-sync-in-junk": data[:middle] + false_sync + data[middle:],
        "size-zero-sync-in-junk": data[:middle] + size_zero + data[middle:],
        "size-flipped": bytes(flipped),
        "tail": data + rng.randbytes(3000),
    }
    for index in range(6):
        mutated = bytearray(data)
        at = rng.randrange(len(mutated))
        if index % 2:
            mutated[at:at] = rng.randbytes(rng.randint(1, 3000))
        else:
            del mutated[at : at + rng.randint(1, 3000)]
        variants[f"random-{index}"] = bytes(mutated)
    return variants


@pytest.mark.parametrize(("container", "codec", "rate"), [("adts", "aac", RATE), ("ac3", "ac3", 48_000)])
def test_damage_inside_a_raw_stream_bills_what_ffmpeg_decodes_never_more(
    container: str, codec: str, rate: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled walk, the vectorised one and the frame-by-frame reference count the same; each bill is at most
    what PyAV decodes and, for one damage of a kind, at most two frames less (the damaged frame, and one swallowed by
    its stated size)."""
    from earshot.audio.lengths import compiled, elementary

    frame = 1024 if codec == "aac" else 1536
    data = encode_tone(tmp_path / f"tone.{container}", container, codec, 10.0, rate).read_bytes()
    head = data[:7]
    for name, variant in _damaged(data, head, seed=23).items():
        path = _write(tmp_path, f"{name}.{container}", variant)
        decoded = _decoded_samples(path)
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            native = elementary.elementary_length(mapped, codec, rate)
            with monkeypatch.context() as patched:
                patched.setattr(compiled, "compiled_walkers", lambda: None)
                vectorised = elementary.elementary_length(mapped, codec, rate)
                kind = elementary.adts_kind(head) if codec == "aac" else elementary._ac3_kind(head)
                assert kind is not None
                flags = elementary.REFUSE_SEVERAL | (elementary.ADTS_DEMUXER if codec == "aac" else 0)
                reference = elementary._walk(mapped, kind, 0, flags)[0]
        assert native is not None and native == vectorised, name
        assert native.samples == reference, name
        assert native.samples <= decoded, (name, native.samples, decoded)
        # Random damage may leave ffmpeg's raw ADTS demuxer inside a false frame whose bytes its parser then splits
        # into the real frames; the walk skips such a false frame whole (docs/decisions.md): up to a second less.
        assert native.samples >= decoded - (rate if name.startswith("random") else 2 * frame), name
