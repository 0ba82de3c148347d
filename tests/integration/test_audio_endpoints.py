"""understand, extract-audio, v2 transcribe, URL inputs and rate limits, through the local gateway.

Upstream models are the fake OpenAI and Gemini servers on 127.0.0.1; embedded engines are real.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from audio_fixtures import audio_bytes
from fakes.upstreams import FakeGemini, FakeOpenAI, error, hang
from gateway_requests import balance, call, form, ledger_kinds

from earshot.local.server import GatewayResponse, LocalGateway
from earshot.runtime import get_runtime, reset_runtime
from earshot.services.accounts import NewKey, create_key

MB = 1024 * 1024


def _catalog(path: Path, openai_url: str, gemini_url: str) -> Path:
    path.write_text(
        f"""
[[models]]
sku = "whisper-fake"
kind = "transcription"
provider = "openai-transcription"
upstream_model = "whisper-1"
base_url = "{openai_url}"
credential = "env:FAKE_OPENAI_KEY"
price_micro_usd_per_minute = 900
aliases = ["transcribe"]

[[models]]
sku = "gemini-fake"
kind = "understanding"
provider = "gemini"
upstream_model = "gemini-2.5-flash"
base_url = "{gemini_url}"
credential = "env:FAKE_GEMINI_KEY"
price_micro_usd_per_minute = 648
aliases = ["audio-understand"]

[[models]]
sku = "gemini-extract-fake"
kind = "extraction"
provider = "gemini"
upstream_model = "gemini-2.5-flash"
base_url = "{gemini_url}"
credential = "env:FAKE_GEMINI_KEY"
base_price_micro_usd = 1000
price_micro_usd_per_minute = 200
aliases = ["extract"]

[[models]]
sku = "acoustic-understand"
kind = "understanding"
provider = "embedded:analyzer"
price_micro_usd_per_minute = 300
"""
    )
    return path


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
    monkeypatch.setenv("EARSHOT_REQUEST_TIMEOUT_SEC", "4")
    monkeypatch.setenv("EARSHOT_ALLOW_LOOPBACK_URLS", "true")
    reset_runtime()
    openai.reply_text = gemini.reply_text = "A steady 440 Hz tone."
    return openai, gemini


@pytest.fixture
def account(upstream: tuple[FakeOpenAI, FakeGemini]) -> NewKey:
    return create_key(get_runtime().store, name="t", balance_micro_usd=1_000_000)


def _json(response: GatewayResponse) -> dict[str, Any]:
    return json.loads(response.body)  # type: ignore[no-any-return]


WAV_70S = audio_bytes("wav", 70.0, sample_rate=16000)
WAV_2S = audio_bytes("wav", 2.0, sample_rate=16000)


# -- upstream transcription --------------------------------------------------------------------------------------
def test_transcription_through_an_openai_compatible_upstream(account: NewKey, upstream: Any) -> None:
    openai, _ = upstream
    body, ctype = form({"response_format": "verbose_json"}, WAV_70S)
    response = call("POST", "/v1/audio/transcriptions", account.secret, body, ctype)
    assert response.status == 200, response.body
    payload = _json(response)
    assert payload["text"] == "Hello there. How are you?"
    assert payload["billing"]["billable_minutes"] == 2 and payload["billing"]["cost_micro_usd"] == 1800
    assert balance(account) == 1_000_000 - 1800
    assert openai.requests[-1].headers["authorization"] == f"Bearer {openai.api_key}"


def test_upstream_failures_are_502_and_refunded(account: NewKey, upstream: Any) -> None:
    openai, _ = upstream
    openai.fail_next(error(503), error(503), error(503))
    body, ctype = form({}, WAV_2S)
    response = call("POST", "/v1/audio/transcriptions", account.secret, body, ctype)
    assert response.status == 502
    assert _json(response)["error"]["code"] == "provider_error"
    assert openai.api_key not in response.body.decode()
    assert balance(account) == 1_000_000
    assert ledger_kinds(account) == ["refund", "debit", "topup"]


def test_an_upstream_that_hangs_is_504_and_refunded(account: NewKey, upstream: Any) -> None:
    openai, _ = upstream
    openai.fail_next(hang(20))
    body, ctype = form({}, WAV_2S)
    short = LocalGateway(max_request_bytes=26 * MB, timeout_sec=4)  # a 4 s Lambda: the deadline comes from it
    started = time.monotonic()
    response = short.handle(
        method="POST",
        path="/v1/audio/transcriptions",
        raw_query="",
        headers={"Authorization": f"Bearer {account.secret}", "Content-Type": ctype},
        body=body,
    )
    assert time.monotonic() - started < 5
    assert response.status == 504
    assert _json(response)["error"]["code"] == "provider_timeout"
    assert balance(account) == 1_000_000


# -- understand --------------------------------------------------------------------------------------------------
def test_understand_answers_and_bills_the_measured_duration(account: NewKey, upstream: Any) -> None:
    _, gemini = upstream
    body, ctype = form({"question": "What is the mood?", "duration_sec": "5"}, WAV_70S)
    response = call("POST", "/v1/audio/understand", account.secret, body, ctype)
    assert response.status == 200, response.body
    payload = _json(response)
    assert payload["answer"] == "A steady 440 Hz tone."
    assert payload["model"] == "gemini-fake"
    billing = payload["billing"]
    assert billing["duration_source"] == "measured"  # a shorter hint never lowers the bill
    assert billing["billable_minutes"] == 2 and billing["cost_micro_usd"] == 1296
    assert "What is the mood?" in json.dumps(gemini.requests[-1].json)


def test_a_longer_duration_hint_raises_the_bill(account: NewKey, upstream: Any) -> None:
    body, ctype = form({"question": "Any music?", "duration_sec": "190"}, WAV_2S)
    payload = _json(call("POST", "/v1/audio/understand", account.secret, body, ctype))
    assert payload["billing"]["duration_source"] == "caller_hint"
    assert payload["billing"]["billable_minutes"] == 4


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"question": "x", "model": "whisper-fake"}, "not_an_audio_model"),
        ({}, "invalid_request"),
        ({"question": "x", "duration_sec": "-3"}, "invalid_request"),
    ],
)
def test_understand_refusals(account: NewKey, upstream: Any, fields: dict[str, str], code: str) -> None:
    body, ctype = form(fields, WAV_2S)
    response = call("POST", "/v1/audio/understand", account.secret, body, ctype)
    assert response.status == 400
    assert _json(response)["error"]["code"] == code
    assert balance(account) == 1_000_000


def test_understand_on_the_embedded_analyzer(account: NewKey, upstream: Any) -> None:
    body, ctype = form({"question": "How loud is it?", "model": "acoustic-understand"}, WAV_2S)
    response = call("POST", "/v1/audio/understand", account.secret, body, ctype)
    assert response.status == 200, response.body
    assert "LUFS" in _json(response)["answer"] or "silen" in _json(response)["answer"].lower()


# -- extract-audio -----------------------------------------------------------------------------------------------
def _extract(account: NewKey, payload: dict[str, Any]) -> GatewayResponse:
    return call("POST", "/api/v1/extract-audio", account.secret, json.dumps(payload).encode(), "application/json")


def test_extract_base64_text_mode_reports_credits(account: NewKey, upstream: Any) -> None:
    response = _extract(
        account,
        {
            "inputMethod": "base64",
            "audio": base64.b64encode(WAV_70S).decode(),
            "prompt": "Summarise",
            "jsonMode": False,
        },
    )
    assert response.status == 200, response.body
    payload = _json(response)
    assert payload == {
        "results": "A steady 440 Hz tone.",
        "prompt": "Summarise",
        "audioDuration": 70.0,
        "creditUsage": 14,
    }
    assert balance(account) == 1_000_000 - (1000 + 2 * 200)
    assert response.headers["X-RateLimit-Limit"] == "600"


def test_extract_with_a_schema_validates_the_json(account: NewKey, upstream: Any) -> None:
    _, gemini = upstream
    gemini.reply_text = json.dumps({"tone": "steady", "hz": 440})
    schema = {"type": "object", "required": ["tone", "hz"], "properties": {"hz": {"type": "number"}}}
    data_url = "data:audio/wav;base64," + base64.b64encode(WAV_2S).decode()
    response = _extract(account, {"inputMethod": "base64", "audio": data_url, "prompt": "Describe", "schema": schema})
    assert response.status == 200, response.body
    assert _json(response)["results"] == {"tone": "steady", "hz": 440}


def test_extract_that_never_matches_the_schema_is_500_and_refunded(account: NewKey, upstream: Any) -> None:
    """extract-audio's contract has no 422: a failed extraction is its documented 500 (and never charged)."""
    _, gemini = upstream
    gemini.reply_text = json.dumps({"tone": "steady"})
    before = len(gemini.requests)
    schema = {"type": "object", "required": ["hz"]}
    response = _extract(
        account, {"inputMethod": "base64", "audio": base64.b64encode(WAV_2S).decode(), "prompt": "x", "schema": schema}
    )
    assert response.status == 500
    assert _json(response)["error"].startswith("Failed to extract audio data: the result does not match the schema")
    assert len(gemini.requests) - before == 2  # the answer, and one repair
    assert balance(account) == 1_000_000


@pytest.mark.parametrize(
    "payload",
    [
        {"inputMethod": "ftp", "audio": "x", "prompt": "p"},
        {"inputMethod": "base64", "audio": "%%%not base64%%%", "prompt": "p"},
        {"inputMethod": "base64", "audio": base64.b64encode(b"text, not audio").decode(), "prompt": "p"},
        {"inputMethod": "url", "audio": "https://10.0.0.1/a.wav", "prompt": "p"},
        {"inputMethod": "url", "audio": "file:///etc/passwd", "prompt": "p"},
        {"inputMethod": "base64", "audio": "AAAA", "prompt": ""},
        {"inputMethod": "base64", "audio": "AAAA", "prompt": "p", "schema": {"type": "nonsense"}},
    ],
)
def test_extract_bad_input_is_400_and_free(account: NewKey, upstream: Any, payload: dict[str, Any]) -> None:
    response = _extract(account, payload)
    assert response.status == 400, response.body
    assert balance(account) == 1_000_000


def test_extract_fetches_audio_by_url(account: NewKey, upstream: Any) -> None:
    class Audio(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", str(len(WAV_2S)))
            self.end_headers()
            self.wfile.write(WAV_2S)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Audio)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.wav"
        response = _extract(account, {"inputMethod": "url", "audio": url, "prompt": "What is it?"})
    finally:
        server.shutdown()
    assert response.status == 200, response.body
    assert _json(response)["audioDuration"] == 2.0


def test_extract_lists_its_formats(account: NewKey) -> None:
    payload = _json(call("GET", "/api/v1/extract-audio", account.secret))
    assert "mp3" in payload["supportedFormats"] and payload["maxFileSizeMB"] == 100


# -- /api/v2/Audio/transcribe ------------------------------------------------------------------------------------
def test_v2_transcribe_shape(account: NewKey, upstream: Any) -> None:
    body, ctype = form({"prompt": "names: Ada", "user": "u1"}, WAV_2S)
    response = call("POST", "/api/v2/Audio/transcribe", account.secret, body, ctype)
    assert response.status == 200, response.body
    payload = _json(response)
    assert payload["transcript"] == "Hello there. How are you?"
    assert payload["metadata"] == {"language": "English", "duration": "2.000"}
    assert payload["cost"] == {"completion": 0.0, "prompt": 0.0009, "total": 0.0009, "currency": "USD"}
    assert set(payload) == {"instanceId", "transcript", "metadata", "tokenUsage", "cost"}


def test_v2_accepts_video_containers(account: NewKey, upstream: Any) -> None:
    body, ctype = form({}, audio_bytes("mp4_video", 2.0), "clip.mp4")
    response = call("POST", "/api/v2/Audio/transcribe", account.secret, body, ctype)
    assert response.status == 200, response.body


@pytest.mark.parametrize(
    ("fields", "culture", "needle"),
    [
        ({"prompt": "x" * 257}, "es", "parámetro: prompt"),
        ({"user": "u" * 101}, "es", "parámetro: user"),
        ({"prompt": "x" * 257}, "en", "prompt"),
    ],
)
def test_v2_limits_and_culture(
    account: NewKey, upstream: Any, fields: dict[str, str], culture: str, needle: str
) -> None:
    body, ctype = form(fields, WAV_2S)
    response = call("POST", "/api/v2/Audio/transcribe", account.secret, body, ctype, query=f"culture={culture}")
    assert response.status == 400
    assert needle in _json(response)["error"]["message"]


def test_v2_errors_in_spanish(account: NewKey, upstream: Any) -> None:
    body, ctype = form({}, b"not audio at all", "a.wav")
    response = call("POST", "/api/v2/Audio/transcribe", account.secret, body, ctype, query="culture=es")
    error_body = _json(response)["error"]
    assert response.status == 400 and error_body["code"] == "invalid_audio"
    assert error_body["message"].startswith("No se pudo leer el audio")


# -- rate limits -------------------------------------------------------------------------------------------------
def test_rate_limits_count_per_key_and_answer_429(
    account: NewKey, upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EARSHOT_RATE_LIMIT_PER_MINUTE", "3")
    reset_runtime()
    statuses, remaining = [], []
    for _ in range(4):
        response = call("GET", "/v1/credits/balance", account.secret)
        statuses.append(response.status)
        remaining.append(response.headers.get("X-RateLimit-Remaining"))
    assert statuses[:3] == [200, 200, 200] and remaining[:3] == ["2", "1", "0"]
    assert statuses[3] == 429
    assert response.headers["Retry-After"].isdigit() and response.headers["X-RateLimit-Limit"] == "3"
    assert _json(response)["error"]["code"] == "rate_limited"
    other = create_key(get_runtime().store, name="other", balance_micro_usd=0)
    assert call("GET", "/v1/credits/balance", other.secret).status == 200  # per key


def test_loopback_urls_are_refused_unless_allowed(
    account: NewKey, upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EARSHOT_ALLOW_LOOPBACK_URLS", "false")
    reset_runtime()
    body, ctype = form({"url": "http://127.0.0.1:9/a.wav"}, None)
    response = call("POST", "/v1/audio/transcriptions", account.secret, body, ctype)
    assert response.status == 400
    assert _json(response)["error"]["param"] == "url"
