"""Files whose length headers lie bill the audio they hold: metering, then every audio route.

The corpus is built by ``hostile_audio.claim_seconds`` (byte patching of real encodes): a ~1 s file claiming
ten hours, a 100 s file claiming one second, and a 100 s file cut to 40 % of its bytes, in every format
whose headers can lie.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audio_fixtures import audio_bytes, decoded_duration, encode_tone
from fakes.upstreams import FakeGemini, FakeOpenAI
from hostile_audio import LYING_FORMATS, claim_seconds, truncate

from earshot.config import get_settings
from earshot.errors import InvalidAudioError
from earshot.local.server import LocalGateway
from earshot.metering import meter_duration
from earshot.runtime import get_runtime, reset_runtime
from earshot.services.accounts import NewKey, create_key

TEN_HOURS = 36_000.0
# One codec frame of each format: how close to the decoded length metering must be.
FRAME = {"wav": 1 / 44100, "flac": 4608 / 44100, "ogg_vorbis": 2048 / 44100, "ogg_opus": 0.020, "webm": 0.020}
FRAME |= {"m4a": 1024 / 44100, "mp3": 1152 / 44100, "mp3_vbr": 1152 / 44100}
SUFFIX = {"ogg_vorbis": ".ogg", "ogg_opus": ".opus", "mp3_vbr": ".mp3"}


@pytest.fixture(scope="module")
def originals() -> dict[str, tuple[bytes, bytes]]:
    """(about 1 s, 100 s) of audio per format, encoded once."""
    return {fmt: (audio_bytes(fmt, 1.0), audio_bytes(fmt, 100.0, kind="noise")) for fmt in LYING_FORMATS}


def _meter(tmp_path: Path, name: str, data: bytes) -> float:
    path = tmp_path / name
    path.write_bytes(data)
    return meter_duration(path, ffprobe=get_settings().resolved_ffprobe()).seconds


@pytest.mark.parametrize("fmt", LYING_FORMATS)
def test_a_short_file_claiming_ten_hours_meters_its_frames(
    fmt: str, originals: dict[str, tuple[bytes, bytes]], tmp_path: Path
) -> None:
    short, _ = originals[fmt]
    honest = _meter(tmp_path, "honest", short)
    assert abs(honest - 1.0) <= FRAME[fmt] + 1e-6

    assert abs(_meter(tmp_path, "lying", claim_seconds(short, fmt, TEN_HOURS)) - honest) <= FRAME[fmt] + 1e-6


@pytest.mark.parametrize("fmt", [f for f in LYING_FORMATS if f != "wav"])
def test_a_long_file_claiming_one_second_meters_its_frames(
    fmt: str, originals: dict[str, tuple[bytes, bytes]], tmp_path: Path
) -> None:
    _, long = originals[fmt]
    lying = claim_seconds(long, fmt, 1.0)
    assert abs(_meter(tmp_path, "lying", lying) - 100.0) <= FRAME[fmt] + 1e-6


def test_a_wav_claiming_less_meters_what_decoders_play(
    originals: dict[str, tuple[bytes, bytes]], tmp_path: Path
) -> None:
    """A WAV data size is where every decoder stops, so the engine hears (and the bill covers) 1 s."""
    lying = claim_seconds(originals["wav"][1], "wav", 1.0)
    path = tmp_path / "lying.wav"
    path.write_bytes(lying)
    assert _meter(tmp_path, "lying.wav", lying) == pytest.approx(decoded_duration(path), abs=1e-6)


@pytest.mark.parametrize("fmt", LYING_FORMATS)
def test_a_truncated_file_meters_what_is_left(
    fmt: str, originals: dict[str, tuple[bytes, bytes]], tmp_path: Path
) -> None:
    cut = truncate(originals[fmt][1], 0.4)
    try:
        metered = _meter(tmp_path, "cut" + SUFFIX.get(fmt, "." + fmt), cut)
    except InvalidAudioError:
        assert fmt == "m4a"  # its sample table (moov) is written last: nothing of a cut file decodes
        return
    assert 38.0 <= metered <= 41.0
    path = tmp_path / "cut.bin"
    path.write_bytes(cut)
    if fmt != "flac":  # PyAV stops with an error at FLAC's cut frame instead of returning what it decoded
        assert abs(metered - decoded_duration(path)) <= FRAME[fmt] + 1e-6


# --- every audio route ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAI, FakeGemini]]:
    with FakeOpenAI() as openai, FakeGemini() as gemini:
        yield openai, gemini


@pytest.fixture
def account(data_dir: Path, fakes: tuple[FakeOpenAI, FakeGemini], monkeypatch: pytest.MonkeyPatch) -> NewKey:
    openai, gemini = fakes
    catalog = data_dir.parent / "catalog.toml"
    models = [
        ("whisper-fake", "transcription", "openai-transcription", "whisper-1", openai, "transcribe", ""),
        ("gemini-fake", "understanding", "gemini", "gemini-2.5-flash", gemini, "audio-understand", ""),
        ("gemini-extract-fake", "extraction", "gemini", "gemini-2.5-flash", gemini, "extract", "1000"),
    ]
    catalog.write_text(
        "\n".join(
            f'[[models]]\nsku = "{sku}"\nkind = "{kind}"\nprovider = "{provider}"\nupstream_model = "{upstream}"\n'
            f'base_url = "{fake.url}"\ncredential = "env:FAKE_KEY_{index}"\nprice_micro_usd_per_minute = 900\n'
            f'aliases = ["{alias}"]\n'
            + (f"base_price_micro_usd = {base}\n" if base else "")
            + ("translates = true\n" if kind == "transcription" else "")
            for index, (sku, kind, provider, upstream, fake, alias, base) in enumerate(models)
        )
    )
    monkeypatch.setenv("EARSHOT_CATALOG", str(catalog))
    for index, (*_, fake, _alias, _base) in enumerate(models):
        monkeypatch.setenv(f"FAKE_KEY_{index}", fake.api_key)
    reset_runtime()
    openai.reply_text = gemini.reply_text = "A tone."
    return create_key(get_runtime().store, name="t", balance_micro_usd=10_000_000)


def _multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    out = b"".join(
        f'--B\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    )
    out += f'--B\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n\r\n'.encode()
    return out + data + b"\r\n--B--\r\n", "multipart/form-data; boundary=B"


def _send(route: str, key: str, filename: str, data: bytes) -> Any:
    if route in ("/v1/audio/transcriptions", "/v1/audio/translations", "/api/v2/Audio/transcribe"):
        body, ctype = _multipart({}, filename, data)
    elif route == "/v1/audio/understand":
        body, ctype = _multipart({"question": "What is it?"}, filename, data)
    elif route == "/api/v1/extract-audio":
        payload: dict[str, Any] = {
            "inputMethod": "base64",
            "audio": base64.b64encode(data).decode(),
            "prompt": "Describe",
        }
        body, ctype = json.dumps(payload).encode(), "application/json"
    else:
        url = "data:audio/mpeg;base64," + base64.b64encode(data).decode()
        payload = {"model": "audio-understand", "audio": url, "sync": True}
        body, ctype = json.dumps(payload).encode(), "application/json"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": ctype}
    return LocalGateway(max_request_bytes=40 * 1024 * 1024).handle(
        method="POST", path=route, raw_query="", headers=headers, body=body
    )


ROUTES = (
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/audio/understand",
    "/api/v1/extract-audio",
    "/api/v2/Audio/transcribe",
    "/v1/audio/understanding",
)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("fmt", LYING_FORMATS)
def test_every_route_bills_the_frames_not_the_header(
    route: str, fmt: str, account: NewKey, originals: dict[str, tuple[bytes, bytes]]
) -> None:
    lying = claim_seconds(originals[fmt][0], fmt, TEN_HOURS)
    response = _send(route, account.secret, "clip" + SUFFIX.get(fmt, "." + fmt), lying)
    assert response.status == 200, response.body
    debits = [e for e in get_runtime().store.list_ledger(account.account.id) if e.kind == "debit"]
    assert len(debits) == 1
    assert debits[0].billable_minutes == 1
    assert abs((debits[0].duration_ms or 0) - 1000) <= FRAME[fmt] * 1000 + 1


@pytest.mark.parametrize("fmt", ["flac", "ogg_opus", "webm", "m4a"])
def test_a_long_file_claiming_one_second_bills_its_length(
    fmt: str, account: NewKey, originals: dict[str, tuple[bytes, bytes]]
) -> None:
    response = _send(
        "/v1/audio/transcriptions",
        account.secret,
        "a" + SUFFIX.get(fmt, "." + fmt),
        claim_seconds(originals[fmt][1], fmt, 1.0),
    )
    assert response.status == 200, response.body
    assert json.loads(response.body)["billing"]["billable_minutes"] == 2


@pytest.mark.parametrize("route", ["/v1/audio/transcriptions", "/v1/audio/understanding"])
@pytest.mark.parametrize("fmt", [f for f in LYING_FORMATS if f != "m4a"])
def test_a_truncated_file_is_heard_and_billed_up_to_the_cut(
    route: str, fmt: str, account: NewKey, originals: dict[str, tuple[bytes, bytes]], tmp_path: Path
) -> None:
    """A recording cut short (an interrupted upload, a crashed recorder) is answered from the audio before the cut,
    as the ffmpeg command line decodes it: the frame the cut ends in is skipped, not the whole file refused."""
    from earshot.audio.decode import SAMPLE_RATE, decode_to_pcm16k

    cut = truncate(originals[fmt][1], 0.4)
    name = "cut" + SUFFIX.get(fmt, "." + fmt)
    metered = _meter(tmp_path, name, cut)
    heard = len(decode_to_pcm16k(tmp_path / name)) / SAMPLE_RATE
    assert metered - FRAME[fmt] - 1e-3 <= heard <= metered + 1e-3  # FLAC's parser may hold back the last whole frame
    response = _send(route, account.secret, name, cut)
    assert response.status == 200, response.body
    debits = [e for e in get_runtime().store.list_ledger(account.account.id) if e.kind == "debit"]
    assert len(debits) == 1 and debits[0].billable_minutes == 1
    assert abs((debits[0].duration_ms or 0) - metered * 1000) <= 1


# --- the engine hears no more than was metered -------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "ogg_opus", "m4a"])
def test_decoders_stop_at_the_metered_length(
    fmt: str, originals: dict[str, tuple[bytes, bytes]], tmp_path: Path
) -> None:
    """Whatever a decoder would make of the file, within a request's budget it yields exactly the budget."""
    from earshot.audio.budget import decode_budget
    from earshot.audio.decode import SAMPLE_RATE, decode_to_pcm16k

    path = tmp_path / ("long" + SUFFIX.get(fmt, "." + fmt))
    path.write_bytes(originals[fmt][1])
    with decode_budget(12.5):
        assert len(decode_to_pcm16k(path)) == 12.5 * SAMPLE_RATE
    assert len(decode_to_pcm16k(path)) >= 99 * SAMPLE_RATE  # outside a request, the whole file


# --- codecs the first corpus missed (test_codec_lengths.py meters them; here they go through the routes) -----------
def _codec_lies(tmp_path: Path) -> dict[str, tuple[str, bytes, int]]:
    """name -> (filename, hostile bytes, milliseconds of audio they hold)."""
    from audio_fixtures import encode_tone
    from hostile_audio import inflate_wavpack_blocks, set_last_granule

    alac = encode_tone(tmp_path / "a.mka", "matroska", "alac", 3.0, 16_000).read_bytes()
    wavpack = encode_tone(tmp_path / "a.wv", "wv", "wavpack", 20.0, 16_000).read_bytes()
    aiff = encode_tone(tmp_path / "a.aiff", "aiff", "pcm_s16be", 3.0, 16_000).read_bytes()
    adts = encode_tone(tmp_path / "a.aac", "adts", "aac", 3.0, 16_000)  # 48 whole frames of 1024 samples
    return {
        "aiff_claiming_hours": ("clip.aiff", claim_seconds(aiff, "aiff", TEN_HOURS), 3000),
        # The last frame before junk is not billed (ffmpeg's resume rule: it may be the one the junk was inserted
        # into; docs/decisions.md): one 64 ms frame under what the clean file decodes.
        "adts_with_junk": (
            "clip.aac",
            adts.read_bytes() + bytes(range(256)) * 16,
            round(decoded_duration(adts) * 1000) - 64,
        ),
        "mka_alac_claiming_hours": ("clip.mka", claim_seconds(alac, "mka", TEN_HOURS), 3000),
        "wv_block_inflated": ("clip.wv", inflate_wavpack_blocks(wavpack, 2.0, [1]), 20_000),
        "opus_granule_destroyed": ("clip.opus", set_last_granule(audio_bytes("ogg_opus", 60.0), 0), 59_993),
    }


@pytest.mark.parametrize("route", ["/v1/audio/transcriptions", "/v1/audio/understanding"])
@pytest.mark.parametrize(
    "lie",
    ["mka_alac_claiming_hours", "wv_block_inflated", "opus_granule_destroyed", "aiff_claiming_hours", "adts_with_junk"],
)
def test_codec_lies_bill_the_audio_held_on_upload_and_data_url(
    route: str, lie: str, account: NewKey, tmp_path: Path
) -> None:
    filename, data, held_ms = _codec_lies(tmp_path)[lie]
    response = _send(route, account.secret, filename, data)
    assert response.status == 200, response.body
    debits = [e for e in get_runtime().store.list_ledger(account.account.id) if e.kind == "debit"]
    assert len(debits) == 1
    assert debits[0].billable_minutes == 1
    assert abs((debits[0].duration_ms or 0) - held_ms) <= 1


# --- containers beyond the audio-only ones (lengths in test_container_lengths.py): one upload route, one data URL ---
CONTAINERS = {"mp4_video": ".mp4", "mov_ima4": ".mov", "3gp_amr": ".3gp", "caf_alac": ".caf"}
CONTAINERS |= {"mpegts_video": ".ts", "mpeg_video": ".mpg", "flv_aac": ".flv", "avi_mp3": ".avi", "avi_pcm": ".avi"}
CONTAINERS |= {"asf_wma": ".wma"}
# How ``claim_seconds`` lies in each: mp4's headers, CAF's packet table, MPEG stream timestamps, FLV's onMetaData and
# tag timestamps, AVI's frame counts and stream lengths, ASF's File Properties durations and packet counts.
_LIES = {"caf_alac": "caf", "mpegts_video": "mpegts_video", "mpeg_video": "mpeg_video"}
_LIES |= {"flv_aac": "flv", "avi_mp3": "avi", "avi_pcm": "avi", "asf_wma": "asf"}
_CODECS = {"mov_ima4": ("mov", "adpcm_ima_qt", 44_100), "3gp_amr": ("3gp", "libopencore_amrnb", 8000)}
_CODECS |= {"caf_alac": ("caf", "alac", 44_100), "flv_aac": ("flv", "aac", 44_100)}
_CODECS |= {"avi_mp3": ("avi", "libmp3lame", 44_100), "avi_pcm": ("avi", "pcm_s16le", 16_000)}
_CODECS |= {"asf_wma": ("asf", "wmav2", 44_100)}
_BIT_RATES = {"asf_wma": 64_000}  # PyAV's WMA encoder has no default


def _container_audio(fmt: str, seconds: float, folder: Path) -> bytes:
    if fmt not in _CODECS:
        return audio_bytes(fmt, seconds, kind="noise")
    container, codec, rate = _CODECS[fmt]
    path = folder / f"{fmt}-{seconds}"
    return encode_tone(path, container, codec, seconds, rate, bit_rate=_BIT_RATES.get(fmt)).read_bytes()


@pytest.fixture(scope="module")
def container_originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, bytes]]:
    """(about 1 s, 70 s) of audio per container."""
    folder = tmp_path_factory.mktemp("containers")
    return {fmt: (_container_audio(fmt, 1.0, folder), _container_audio(fmt, 70.0, folder)) for fmt in CONTAINERS}


@pytest.mark.parametrize("route", ["/v1/audio/transcriptions", "/v1/audio/understanding"])
@pytest.mark.parametrize(("claim", "minutes"), [(TEN_HOURS, 1), (1.0, 2)], ids=["claims-10h", "claims-1s"])
@pytest.mark.parametrize("fmt", CONTAINERS)
def test_containers_bill_their_audio_whatever_the_header_claims(
    fmt: str,
    claim: float,
    minutes: int,
    route: str,
    account: NewKey,
    container_originals: dict[str, tuple[bytes, bytes]],
) -> None:
    short, long = container_originals[fmt]
    original = short if claim == TEN_HOURS else long
    response = _send(
        route,
        account.secret,
        "clip" + CONTAINERS[fmt],
        claim_seconds(original, _LIES.get(fmt, "m4a"), claim),
    )
    debits = [e for e in get_runtime().store.list_ledger(account.account.id) if e.kind == "debit"]
    if fmt == "mov_ima4" and claim == 1.0:
        # stts scaled down to one tick per packet is QuickTime's old layout, where these chunks are not whole
        # packets: ffmpeg decodes nothing of it, so nothing is billed.
        assert response.status == 400 and json.loads(response.body)["error"]["code"] == "invalid_audio"
        assert debits == []
        return
    assert response.status == 200, response.body
    assert [debit.billable_minutes for debit in debits] == [minutes]
    expected_ms = 1000 if claim == TEN_HOURS else 70_000
    assert abs((debits[0].duration_ms or 0) - expected_ms) <= 2 * 1024 / 44100 * 1000 + 1
