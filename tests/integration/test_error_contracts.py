"""Every documented error row of every reference document: status, body shape and code, exactly.

One test per row, named after its document. The transcription and understand documents' 413 rows say
``invalid_request``; DESIGN.md (which decides for Earshot) answers 413 ``file_too_large`` on those
routes, and the body keeps the document's ``type`` (``invalid_request_error``).
"""

from __future__ import annotations

import base64
import io
import json
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audio_fixtures import audio_bytes
from fakes.upstreams import FakeGemini, FakeOpenAI, error
from gateway_requests import GATEWAY, WAV, balance, call, form
from test_audio_endpoints import _catalog

from earshot.local.server import GatewayResponse
from earshot.runtime import get_runtime, reset_runtime
from earshot.services.accounts import NewKey, create_key

START = 1_000_000
ENVELOPE_KEYS = {"message", "type", "code", "param", "request_id"}


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAI, FakeGemini]]:
    with FakeOpenAI() as openai, FakeGemini() as gemini:
        yield openai, gemini


@pytest.fixture
def upstream(
    data_dir: Path, fakes: tuple[FakeOpenAI, FakeGemini], monkeypatch: pytest.MonkeyPatch
) -> tuple[FakeOpenAI, FakeGemini]:
    openai, gemini = fakes
    monkeypatch.setenv("EARSHOT_CATALOG", str(_catalog(data_dir.parent / "catalog.toml", openai.url, gemini.url)))
    monkeypatch.setenv("FAKE_OPENAI_KEY", openai.api_key)
    monkeypatch.setenv("FAKE_GEMINI_KEY", gemini.api_key)
    monkeypatch.setenv("EARSHOT_MAX_INLINE_BYTES", str(200_000))  # "> 25 MB" rows, without 25 MB bodies
    monkeypatch.setenv("EARSHOT_MAX_FETCH_BYTES", str(200_000))
    reset_runtime()
    openai.reply_text = gemini.reply_text = "A steady tone."
    return openai, gemini


@pytest.fixture
def account(upstream: Any) -> NewKey:
    return create_key(get_runtime().store, name="t", balance_micro_usd=START)


@pytest.fixture
def broke(upstream: Any) -> NewKey:
    return create_key(get_runtime().store, name="broke", balance_micro_usd=0)


@pytest.fixture
def disabled(upstream: Any) -> NewKey:
    key = create_key(get_runtime().store, name="off", balance_micro_usd=START)
    get_runtime().store.set_audio_enabled(key.account.id, False)
    return key


def _envelope(response: GatewayResponse, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, response.body
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(response.body)
    assert set(body) == {"error"} and set(body["error"]) == ENVELOPE_KEYS, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


def _plain(response: GatewayResponse, status: int) -> str:
    """extract-audio's shape: exactly ``{"error": "message"}``."""
    assert response.status == status, response.body
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(response.body)
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    return str(body["error"])


def _wav(rate: int, frames: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * frames)
    return out.getvalue()


# -- audio-transcriptions.txt ----------------------------------------------------------------------------------
TRANSCRIBE = "/v1/audio/transcriptions"


def test_transcriptions_400_missing_file(account: NewKey) -> None:
    _envelope(call("POST", TRANSCRIBE, account.secret, *form({"model": "transcribe"}, None)), 400, "invalid_request")


def test_transcriptions_400_notform(account: NewKey) -> None:
    response = call("POST", TRANSCRIBE, account.secret, b'{"model": "transcribe"}', "application/json")
    _envelope(response, 400, "invalid_request")


def test_transcriptions_400_not_a_transcription_model(account: NewKey) -> None:
    response = call("POST", TRANSCRIBE, account.secret, *form({"model": "audio-understand"}))
    _envelope(response, 400, "not_a_transcription_model")


def test_transcriptions_401_auth_error(account: NewKey) -> None:
    _envelope(call("POST", TRANSCRIBE, None, *form({})), 401, "auth_error")
    _envelope(call("POST", TRANSCRIBE, "sk-es-not-a-key", *form({})), 401, "auth_error")


def test_transcriptions_402_billing_error(broke: NewKey) -> None:
    _envelope(call("POST", TRANSCRIBE, broke.secret, *form({})), 402, "billing_error")


def test_transcriptions_404_not_enabled(disabled: NewKey) -> None:
    _envelope(call("POST", TRANSCRIBE, disabled.secret, *form({})), 404, "not_enabled")
    assert balance(disabled) == START


def test_transcriptions_413_file_too_large(account: NewKey) -> None:
    big = audio_bytes("wav", 10.0, sample_rate=16000)  # 320 kB over a 200 kB limit
    error_body = _envelope(call("POST", TRANSCRIBE, account.secret, *form({}, big)), 413, "file_too_large")
    assert error_body["type"] == "invalid_request_error"
    assert "/v1/uploads" in error_body["message"]


def test_transcriptions_502_provider_error(account: NewKey, upstream: Any) -> None:
    upstream[0].fail_next(error(503), error(503), error(503))
    _envelope(call("POST", TRANSCRIBE, account.secret, *form({})), 502, "provider_error")
    assert balance(account) == START


# -- audio-understand.txt --------------------------------------------------------------------------------------
UNDERSTAND = "/v1/audio/understand"


def test_understand_400_missing_file_or_question(account: NewKey) -> None:
    _envelope(call("POST", UNDERSTAND, account.secret, *form({"question": "q"}, None)), 400, "invalid_request")
    _envelope(call("POST", UNDERSTAND, account.secret, *form({})), 400, "invalid_request")


def test_understand_400_not_an_audio_model(account: NewKey) -> None:
    response = call("POST", UNDERSTAND, account.secret, *form({"question": "q", "model": "transcribe"}))
    _envelope(response, 400, "not_an_audio_model")


def test_understand_401_auth_error(account: NewKey) -> None:
    _envelope(call("POST", UNDERSTAND, None, *form({"question": "q"})), 401, "auth_error")


def test_understand_402_billing_error(broke: NewKey) -> None:
    _envelope(call("POST", UNDERSTAND, broke.secret, *form({"question": "q"})), 402, "billing_error")


def test_understand_404_not_enabled(disabled: NewKey) -> None:
    _envelope(call("POST", UNDERSTAND, disabled.secret, *form({"question": "q"})), 404, "not_enabled")


def test_understand_413_file_too_large(account: NewKey) -> None:
    big = audio_bytes("wav", 10.0, sample_rate=16000)
    _envelope(call("POST", UNDERSTAND, account.secret, *form({"question": "q"}, big)), 413, "file_too_large")


def test_understand_502_provider_error(account: NewKey, upstream: Any) -> None:
    upstream[1].fail_next(error(503), error(503), error(503))
    _envelope(call("POST", UNDERSTAND, account.secret, *form({"question": "q"})), 502, "provider_error")
    assert balance(account) == START


# -- extract-audio.txt -----------------------------------------------------------------------------------------
EXTRACT = "/api/v1/extract-audio"


def _extract(key: str | None, payload: dict[str, Any]) -> GatewayResponse:
    return call("POST", EXTRACT, key, json.dumps(payload).encode(), "application/json")


@pytest.mark.parametrize(
    "payload",
    [
        {"inputMethod": "base64", "prompt": "p"},  # audio missing
        {"inputMethod": "base64", "audio": base64.b64encode(WAV).decode()},  # prompt missing
        {"inputMethod": "base64", "audio": base64.b64encode(WAV).decode(), "prompt": ""},
        {"inputMethod": "ftp", "audio": "x", "prompt": "p"},
        {"inputMethod": "url", "audio": "ftp://example.com/a.wav", "prompt": "p"},
        {"inputMethod": "base64", "audio": base64.b64encode(b"not audio").decode(), "prompt": "p"},
    ],
)
def test_extract_400_invalid_request(account: NewKey, payload: dict[str, Any]) -> None:
    _plain(_extract(account.secret, payload), 400)
    assert balance(account) == START


def test_extract_400_not_json(account: NewKey) -> None:
    _plain(call("POST", EXTRACT, account.secret, b"inputMethod=url", "application/x-www-form-urlencoded"), 400)
    _plain(call("POST", EXTRACT, account.secret, b"{not json", "application/json"), 400)


def test_extract_400_over_the_size_limit_quotes_the_audio_size(account: NewKey) -> None:
    big = audio_bytes("wav", 10.0, sample_rate=16000)
    message = _plain(
        _extract(account.secret, {"inputMethod": "base64", "audio": base64.b64encode(big).decode(), "prompt": "p"}), 400
    )
    assert f"{len(big):,}" in message or f"{len(big) / 1e6:.1f} MB" in message, message
    assert f"{len(base64.b64encode(big)):,}" not in message
    assert "/v1/uploads" in message


def _silent_flac(seconds: int, rate: int = 2000) -> bytes:
    """Hours of silence as FLAC (a few MB): real frames, so metering counts the full length."""
    import av
    import numpy as np

    out_buffer = io.BytesIO()
    with av.open(out_buffer, "w", format="flac") as out:
        stream = out.add_stream("flac", rate=rate, layout="mono")
        stream.format = "s16"
        block = np.zeros((1, 32768), dtype=np.int16)
        total, pts = rate * seconds, 0
        while pts < total:
            count = min(block.shape[1], total - pts)
            frame = av.AudioFrame.from_ndarray(block[:, :count], format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, pts
            for packet in stream.encode(frame):
                out.mux(packet)
            pts += count
        for packet in stream.encode(None):
            out.mux(packet)
    return out_buffer.getvalue()


def test_extract_400_over_nine_and_a_half_hours(account: NewKey, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARSHOT_MAX_FETCH_BYTES", str(100 * 1024 * 1024))
    reset_runtime()
    ten_hours = base64.b64encode(_silent_flac(36_001)).decode()
    message = _plain(_extract(account.secret, {"inputMethod": "base64", "audio": ten_hours, "prompt": "p"}), 400)
    assert "34200" in message.replace(",", "") or "9.5 hours" in message, message
    assert balance(account) == START


def test_extract_400_insufficient_credits(broke: NewKey) -> None:
    _plain(
        _extract(broke.secret, {"inputMethod": "base64", "audio": base64.b64encode(WAV).decode(), "prompt": "p"}), 400
    )


def test_extract_401_invalid_or_missing_authorization(account: NewKey) -> None:
    for key in (None, "sk-es-not-a-key"):
        response = _extract(key, {"inputMethod": "base64", "audio": "AAAA", "prompt": "p"})
        assert _plain(response, 401) == "Invalid or missing Authorization header"
    get = GATEWAY.handle(method="GET", path=EXTRACT, raw_query="", headers={}, body=b"")
    assert _plain(get, 401) == "Invalid or missing Authorization header"


def test_extract_500_failed_to_extract(account: NewKey, upstream: Any) -> None:
    upstream[1].fail_next(error(503), error(503), error(503))
    response = _extract(
        account.secret, {"inputMethod": "base64", "audio": base64.b64encode(WAV).decode(), "prompt": "p"}
    )
    assert _plain(response, 500).startswith("Failed to extract audio data: ")
    assert balance(account) == START


# -- v2-audio-transcribe.txt -----------------------------------------------------------------------------------
V2 = "/api/v2/Audio/transcribe"


@pytest.mark.parametrize(
    ("fields", "file", "code"),
    [
        ({"prompt": "x" * 257}, WAV, "invalid_request"),
        ({"user": "u" * 101}, WAV, "invalid_request"),
        ({}, None, "invalid_request"),
        ({}, b"this is not audio", "invalid_audio"),
    ],
)
def test_v2_400_validation(account: NewKey, fields: dict[str, str], file: bytes | None, code: str) -> None:
    _envelope(call("POST", V2, account.secret, *form(fields, file)), 400, code)


def test_v2_400_oversize_file(account: NewKey) -> None:
    big = audio_bytes("wav", 10.0, sample_rate=16000)
    _envelope(call("POST", V2, account.secret, *form({}, big)), 400, "file_too_large")


def test_v2_400_insufficientbalance(broke: NewKey) -> None:
    _envelope(call("POST", V2, broke.secret, *form({})), 400, "billing_error")


def test_v2_401_unauthorized(account: NewKey) -> None:
    _envelope(call("POST", V2, None, *form({})), 401, "auth_error")


def test_v2_403_no_permission(disabled: NewKey) -> None:
    error_body = _envelope(call("POST", V2, disabled.secret, *form({}), query="culture=es"), 403, "not_enabled")
    assert error_body["message"].startswith("No tiene permiso")


@pytest.mark.parametrize("model", ["no-such-model", "audio-understand"])
def test_v2_404_model_not_found(account: NewKey, model: str) -> None:
    response = call("POST", V2, account.secret, *form({"model": model}))
    assert response.status == 404, response.body
    assert json.loads(response.body)["error"]["code"] in ("not_a_transcription_model", "not_found")


def test_v2_500_unexpected(account: NewKey, upstream: Any) -> None:
    upstream[0].fail_next(error(503), error(503), error(503))
    _envelope(call("POST", V2, account.secret, *form({})), 500, "provider_error")
    assert balance(account) == START


def test_v2_messages_follow_the_culture(account: NewKey) -> None:
    english = _envelope(call("POST", V2, account.secret, *form({"prompt": "x" * 257})), 400, "invalid_request")
    spanish = _envelope(
        call("POST", V2, account.secret, *form({"prompt": "x" * 257}), query="culture=es"), 400, "invalid_request"
    )
    assert english["message"] != spanish["message"] and "parámetro: prompt" in spanish["message"]
