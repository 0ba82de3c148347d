"""The shipped catalog's upstream SKUs: live only where their provider's credential is configured.

With no key, every route refuses such a SKU with a 400 in its own error contract, naming the SKU and what to
configure, before any charge, task or upstream call; ``GET /v1/models`` says ``live: false``. With the key and a
base-URL override to a fake upstream on 127.0.0.1, the same request is served and billed at the SKU's price, and
the answer names the SKU. Deployed, the ``ssm:`` references count instead of the environment (moto).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.upstreams import FakeGemini, FakeOpenAI
from gateway_requests import WAV, balance, call, form, post_json

from earshot.adapters import credentials
from earshot.catalog import load_catalog
from earshot.config import Settings
from earshot.local.server import GatewayResponse
from earshot.runtime import get_runtime, reset_runtime
from earshot.services.accounts import NewKey, create_key

START = 1_000_000
UPSTREAM_SKUS = {
    "whisper-v3-turbo": "GROQ_API_KEY",
    "whisper-1": "OPENAI_API_KEY",
    "gpt-4o-transcribe": "OPENAI_API_KEY",
    "gpt-4o-mini-transcribe": "OPENAI_API_KEY",
    "gemini-3-flash-audio": "GEMINI_API_KEY",
    "gemini-2.5-pro": "GEMINI_API_KEY",
}


@pytest.fixture
def account(data_dir: Path) -> NewKey:
    return create_key(get_runtime().store, name="t", balance_micro_usd=START)


def _models(key: NewKey) -> dict[str, dict[str, Any]]:
    response = call("GET", "/v1/models", key.secret)
    assert response.status == 200, response.body
    listed = json.loads(response.body)
    assert listed["object"] == "list"
    for model in listed["data"]:
        assert {"id", "object", "owned_by", "created"} <= set(model) and model["object"] == "model"
        assert isinstance(model["created"], int) and isinstance(model["live"], bool)
    return {model["id"]: model for model in listed["data"]}


def _refused(response: GatewayResponse, code: str, sku: str, configure: str) -> str:
    assert response.status == 400, response.body
    error = json.loads(response.body)["error"]
    assert error["code"] == code and error["param"] == "model", error
    assert repr(sku) in error["message"] and configure in error["message"], error["message"]
    assert "GET /v1/models" in error["message"]
    return str(error["message"])


def test_models_lists_every_sku_and_which_are_live(account: NewKey) -> None:
    models = _models(account)
    assert set(UPSTREAM_SKUS) <= set(models)
    for sku, variable in UPSTREAM_SKUS.items():
        assert models[sku]["live"] is False
        assert variable in models[sku]["setup"]
    for sku in ("whisper-base", "whisper-tiny-en", "acoustic-understand", "acoustic-extract"):
        assert models[sku]["live"] is True and models[sku]["setup"] is None
    # The reference documents' prices where they give one.
    assert models["whisper-v3-turbo"]["price_per_minute_micro_usd"] == 900
    assert models["gemini-3-flash-audio"]["price_per_minute_micro_usd"] == 648
    # The embedded engines keep the aliases: every route works with no key.
    assert "transcribe" in models["whisper-base"]["aliases"]
    assert "audio-understand" in models["acoustic-understand"]["aliases"]
    assert "extract" in models["acoustic-extract"]["aliases"]


@pytest.mark.parametrize("sku", ["whisper-v3-turbo", "whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"])
def test_an_unconfigured_transcription_sku_is_a_400_before_any_charge(account: NewKey, sku: str) -> None:
    response = call("POST", "/v1/audio/transcriptions", account.secret, *form({"model": sku}))
    _refused(response, "not_a_transcription_model", sku, f"set {UPSTREAM_SKUS[sku]}")
    assert balance(account) == START


def test_every_route_refuses_an_unconfigured_sku_in_its_own_contract(account: NewKey) -> None:
    translate = call("POST", "/v1/audio/translations", account.secret, *form({"model": "whisper-1"}))
    _refused(translate, "not_a_transcription_model", "whisper-1", "set OPENAI_API_KEY")
    asynchronous = call(
        "POST", "/v1/audio/transcriptions", account.secret, *form({"model": "whisper-v3-turbo", "async": "true"})
    )
    _refused(asynchronous, "not_a_transcription_model", "whisper-v3-turbo", "set GROQ_API_KEY")
    understand = call(
        "POST", "/v1/audio/understand", account.secret, *form({"model": "gemini-3-flash-audio", "question": "q"})
    )
    _refused(understand, "not_an_audio_model", "gemini-3-flash-audio", "set GEMINI_API_KEY")
    data_uri = "data:audio/wav;base64," + base64.b64encode(WAV).decode()
    understanding = post_json("/v1/audio/understanding", account.secret, {"model": "gemini-2.5-pro", "audio": data_uri})
    _refused(understanding, "not_an_audio_model", "gemini-2.5-pro", "set GEMINI_API_KEY")
    upload = post_json(
        "/v1/uploads",
        account.secret,
        {
            "filename": "a.wav",
            "bytes": len(WAV),
            "purpose": "audio",
            "process": {"kind": "transcription", "model": "whisper-v3-turbo"},
        },
    )
    _refused(upload, "not_a_transcription_model", "whisper-v3-turbo", "set GROQ_API_KEY")
    # v2: a known model that is not configured is a validation error (400), not the 404 of an unknown one.
    v2 = call("POST", "/api/v2/Audio/transcribe", account.secret, *form({"model": "whisper-v3-turbo"}))
    _refused(v2, "not_a_transcription_model", "whisper-v3-turbo", "set GROQ_API_KEY")
    v2_es = call("POST", "/api/v2/Audio/transcribe", account.secret, *form({"model": "whisper-v3-turbo"}), "culture=es")
    assert v2_es.status == 400
    assert json.loads(v2_es.body)["error"]["message"].startswith("El modelo 'whisper-v3-turbo' no está activo")
    assert balance(account) == START
    assert get_runtime().tasks.list_unfinished(updated_before=2**40) == []  # no task was created either


def test_extract_audio_refuses_an_unconfigured_sku_as_its_plain_400(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = data_dir.parent / "catalog.toml"
    catalog.write_text(
        '[[models]]\nsku = "gemini-extract"\nkind = "extraction"\nprovider = "gemini"\n'
        'upstream_model = "gemini-3-flash-preview"\n'
        'credentials = ["env:GEMINI_API_KEY", "ssm:/earshot/{stage}/gemini"]\n'
        'price_micro_usd_per_minute = 200\nbase_price_micro_usd = 1000\naliases = ["extract"]\n'
    )
    monkeypatch.setenv("EARSHOT_CATALOG", str(catalog))
    reset_runtime()
    key = create_key(get_runtime().store, name="t", balance_micro_usd=START)
    data = base64.b64encode(WAV).decode()
    response = post_json("/api/v1/extract-audio", key.secret, {"inputMethod": "base64", "audio": data, "prompt": "p"})
    assert response.status == 400, response.body
    body = json.loads(response.body)
    assert set(body) == {"error"} and isinstance(body["error"], str)
    assert "'gemini-extract' is not live" in body["error"] and "set GEMINI_API_KEY" in body["error"]
    assert balance(key) == START


@pytest.fixture
def groq(data_dir: Path) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key="gsk_test_groq_0123456789") as fake:
        yield fake


def _configure(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    reset_runtime()


def test_a_configured_sku_is_served_by_its_upstream_and_billed_at_its_price(
    account: NewKey, groq: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(
        monkeypatch,
        GROQ_API_KEY=groq.api_key,
        EARSHOT_GROQ_BASE_URL=groq.url,
        EARSHOT_ALLOW_LOOPBACK_URLS="true",
    )
    assert _models(account)["whisper-v3-turbo"] | {"live": True, "setup": None} == _models(account)["whisper-v3-turbo"]
    response = call("POST", "/v1/audio/transcriptions", account.secret, *form({"model": "whisper-v3-turbo"}))
    assert response.status == 200, response.body
    body = json.loads(response.body)
    assert body["model"] == "whisper-v3-turbo" and body["text"] == "Hello there. How are you?"
    assert body["billing"]["cost_micro_usd"] == 900 and balance(account) == START - 900
    (seen,) = groq.requests
    assert seen.path == "/v1/audio/transcriptions" and seen.model == "whisper-large-v3-turbo"
    assert seen.headers["authorization"] == f"Bearer {groq.api_key}"
    text = call(
        "POST",
        "/v1/audio/transcriptions",
        account.secret,
        *form({"model": "whisper-v3-turbo", "response_format": "text"}),
    )
    assert text.status == 200 and text.headers["X-Earshot-Model"] == "whisper-v3-turbo"
    # Other providers stay off: their keys are not set.
    assert _models(account)["whisper-1"]["live"] is False


def test_a_base_url_override_outside_the_url_policy_keeps_the_sku_off(
    account: NewKey, groq: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EARSHOT_ALLOW_LOOPBACK_URLS", raising=False)
    _configure(monkeypatch, GROQ_API_KEY=groq.api_key, EARSHOT_GROQ_BASE_URL=groq.url)
    model = _models(account)["whisper-v3-turbo"]
    assert model["live"] is False and "EARSHOT_GROQ_BASE_URL" in model["setup"]
    response = call("POST", "/v1/audio/transcriptions", account.secret, *form({"model": "whisper-v3-turbo"}))
    _refused(response, "not_a_transcription_model", "whisper-v3-turbo", "EARSHOT_ALLOW_LOOPBACK_URLS")
    assert groq.requests == [] and balance(account) == START


def test_the_key_never_appears_in_models_errors_or_logs(
    account: NewKey, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeGemini() as gemini:
        _configure(
            monkeypatch,
            GEMINI_API_KEY=gemini.api_key,
            EARSHOT_GEMINI_BASE_URL="http://10.0.0.1/v1beta",  # private: refused by the policy
            EARSHOT_ALLOW_LOOPBACK_URLS="true",
        )
        listing = call("GET", "/v1/models", account.secret)
        refusal = call(
            "POST",
            "/v1/audio/understand",
            account.secret,
            *form({"model": "gemini-3-flash-audio", "question": "q"}),
        )
    assert refusal.status == 400
    secret = gemini.api_key.encode()
    assert secret not in listing.body and secret not in refusal.body
    assert b"EARSHOT_GEMINI_BASE_URL" in refusal.body
    assert "request failed" in caplog.text and gemini.api_key not in caplog.text


def test_deployed_stages_read_the_stage_parameter_not_the_environment(
    aws: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    monkeypatch.setenv("GROQ_API_KEY", "gsk-in-the-environment")  # never read when deployed
    monkeypatch.setattr(credentials, "_missing", {})
    settings = Settings(runtime="aws", stage="prod")
    turbo = load_catalog(settings.resolved_catalog()).find("whisper-v3-turbo")
    assert turbo is not None
    assert credentials.usable_references(turbo, settings) == ["ssm:/earshot/prod/groq-api-key"]
    off = credentials.liveness(turbo, settings)
    assert off.live is False and off.setup is not None and "/earshot/prod/groq-api-key" in off.setup
    assert "GROQ_API_KEY" not in off.setup

    boto3.client("ssm").put_parameter(Name="/earshot/prod/groq-api-key", Value="gsk-from-ssm", Type="SecureString")
    monkeypatch.setattr(credentials, "_missing", {})  # what a minute later looks like
    access = credentials.upstream_access(turbo, settings)
    assert access.api_key == "gsk-from-ssm"
    assert access.base_url == "https://api.groq.com/openai/v1"  # no override when deployed
    assert credentials.liveness(turbo, settings).live is True


def test_an_unreadable_parameter_is_not_live_and_logged_for_the_operator(
    aws: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    def denied(name: str, **_: Any) -> str:
        raise GetParameterError(f"An error occurred (AccessDeniedException) when calling GetParameter on {name}")

    monkeypatch.setattr(parameters, "get_parameter", denied)
    monkeypatch.setattr(credentials, "_missing", {})
    settings = Settings(runtime="aws", stage="dev")
    turbo = load_catalog(settings.resolved_catalog()).find("whisper-v3-turbo")
    assert turbo is not None
    assert credentials.liveness(turbo, settings).live is False
    (record,) = [r for r in caplog.records if r.getMessage() == "provider credential unreadable"]
    assert record.reference == "ssm:/earshot/dev/groq-api-key" and "AccessDenied" in record.reason  # type: ignore[attr-defined]
