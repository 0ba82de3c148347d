"""Every malformed request gets a 4xx envelope, is never charged, and never answers 500.

Driven through the local gateway in-process: the same authorizer + handler path as `make serve`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from audio_fixtures import audio_bytes

from earshot.local.server import GatewayResponse, LocalGateway
from earshot.runtime import get_runtime
from earshot.services.accounts import NewKey

MB = 1024 * 1024
PATH = "/v1/audio/transcriptions"


@pytest.fixture
def gateway(data_dir: Path) -> LocalGateway:
    return LocalGateway(max_request_bytes=26 * MB)


def _multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]], boundary: str = "BOUNDARY") -> bytes:
    out = b""
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for name, (filename, data) in files.items():
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


def _post(gateway: LocalGateway, key: str | None, body: bytes, content_type: str) -> GatewayResponse:
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return gateway.handle(method="POST", path=PATH, raw_query="", headers=headers, body=body)


def _error(response: GatewayResponse) -> dict[str, object]:
    payload = json.loads(response.body)
    assert set(payload["error"]) == {"message", "type", "code", "param", "request_id"}
    assert payload["error"]["message"]
    return payload["error"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def wav() -> bytes:
    return audio_bytes("wav", 1.0)


FORM = "multipart/form-data; boundary=BOUNDARY"

CASES = [
    ("not multipart", lambda w: (b'{"file": "x"}', "application/json"), 400, "invalid_request"),
    ("no boundary", lambda w: (_multipart({}, {"file": ("a.wav", w)}), "multipart/form-data"), 400, "invalid_request"),
    ("empty body", lambda w: (b"", FORM), 400, "invalid_request"),
    ("garbage body", lambda w: (b"\x00\x01\x02garbage", FORM), 400, "invalid_request"),
    ("missing file", lambda w: (_multipart({"model": "transcribe"}, {}), FORM), 400, "invalid_request"),
    ("file as a text field", lambda w: (_multipart({"file": "hello"}, {}), FORM), 400, "invalid_request"),
    ("empty file", lambda w: (_multipart({}, {"file": ("a.wav", b"")}), FORM), 400, "invalid_audio"),
    ("text file", lambda w: (_multipart({}, {"file": ("a.mp3", b"just some text\n" * 50)}), FORM), 400, "invalid_audio"),
    ("truncated wav", lambda w: (_multipart({}, {"file": ("a.wav", w[:30])}), FORM), 400, "invalid_audio"),
    ("png", lambda w: (_multipart({}, {"file": ("a.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200)}), FORM), 400, "invalid_audio"),
    ("unknown model", lambda w: (_multipart({"model": "gpt-9"}, {"file": ("a.wav", w)}), FORM), 400, "not_a_transcription_model"),
    ("empty model", lambda w: (_multipart({"model": ""}, {"file": ("a.wav", w)}), FORM), 400, "invalid_request"),
    ("bad format", lambda w: (_multipart({"response_format": "xml"}, {"file": ("a.wav", w)}), FORM), 400, "invalid_request"),
    ("temperature > 1", lambda w: (_multipart({"temperature": "1.5"}, {"file": ("a.wav", w)}), FORM), 400, "invalid_request"),
    ("temperature nan", lambda w: (_multipart({"temperature": "nan"}, {"file": ("a.wav", w)}), FORM), 400, "invalid_request"),
    ("temperature text", lambda w: (_multipart({"temperature": "warm"}, {"file": ("a.wav", w)}), FORM), 400, "invalid_request"),
    ("bad granularity", lambda w: (_multipart({"timestamp_granularities[]": "char"}, {"file": ("a.wav", w)}), FORM), 400, "invalid_request"),
    ("unknown field", lambda w: (_multipart({"colour": "blue"}, {"file": ("a.wav", w)}), FORM), 400, "invalid_request"),
    ("unsupported language", lambda w: (_multipart({"model": "transcribe-fast", "language": "vi"}, {"file": ("a.wav", w)}), FORM), 400, "unsupported_by_model"),
    ("unknown language", lambda w: (_multipart({"language": "klingon"}, {"file": ("a.wav", w)}), FORM), 400, "invalid_request"),
    ("odd language", lambda w: (_multipart({"language": "e n;"}, {"file": ("a.wav", w)}), FORM), 400, "invalid_request"),
    ("two files", lambda w: (_multipart({}, {"file": ("a.wav", w), "other": ("b.wav", w)}), FORM), 400, "invalid_request"),
    ("repeated model", lambda w: (_multipart({"model": "transcribe"}, {"file": ("a.wav", w)}).replace(b"--BOUNDARY\r\n", b'--BOUNDARY\r\nContent-Disposition: form-data; name="model"\r\n\r\nx\r\n--BOUNDARY\r\n', 1), FORM), 400, "invalid_request"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "build", "status", "code"), CASES, ids=[c[0] for c in CASES])
def test_malformed_requests_get_an_envelope_and_cost_nothing(
    gateway: LocalGateway,
    new_key: NewKey,
    wav: bytes,
    name: str,
    build: Callable[[bytes], tuple[bytes, str]],
    status: int,
    code: str,
) -> None:
    body, content_type = build(wav)
    response = _post(gateway, new_key.secret, body, content_type)
    assert response.status == status, response.body
    assert _error(response)["code"] == code
    account = get_runtime().store.get_account(new_key.account.id)
    assert account is not None and account.balance_micro_usd == 1_000_000
    assert [e.kind for e in get_runtime().store.list_ledger(new_key.account.id)] == ["topup"]


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic abc", "Bearer sk-es-short", "Bearer sk-es-" + "A" * 38, "bearer   "],
)
def test_bad_credentials_are_401(gateway: LocalGateway, wav: bytes, data_dir: Path, authorization: str | None) -> None:
    headers = {"Content-Type": FORM}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = gateway.handle(
        method="POST", path=PATH, raw_query="", headers=headers, body=_multipart({}, {"file": ("a.wav", wav)})
    )
    assert response.status == 401
    assert _error(response)["code"] == "auth_error"


def test_revoked_keys_are_401(gateway: LocalGateway, new_key: NewKey, wav: bytes) -> None:
    get_runtime().store.revoke_api_key(new_key.key.id)
    response = _post(gateway, new_key.secret, _multipart({}, {"file": ("a.wav", wav)}), FORM)
    assert response.status == 401
    assert "revoked" in str(_error(response)["message"])


def test_audio_disabled_accounts_get_404_not_enabled(gateway: LocalGateway, new_key: NewKey, wav: bytes) -> None:
    get_runtime().store.set_audio_enabled(new_key.account.id, False)
    response = _post(gateway, new_key.secret, _multipart({}, {"file": ("a.wav", wav)}), FORM)
    assert response.status == 404
    assert _error(response)["code"] == "not_enabled"


def test_files_above_the_inline_limit_are_413_with_the_limit_named(
    gateway: LocalGateway, new_key: NewKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EARSHOT_MAX_INLINE_BYTES", str(1 * MB))
    from earshot.runtime import reset_runtime

    reset_runtime()
    big = audio_bytes("wav", 40.0, sample_rate=16000)  # ~1.3 MB
    response = _post(gateway, new_key.secret, _multipart({}, {"file": ("big.wav", big)}), FORM)
    assert response.status == 413
    error = _error(response)
    assert error["code"] == "file_too_large"
    assert "1.0 MB" in str(error["message"])


def test_bodies_above_the_gateway_limit_are_413(data_dir: Path) -> None:
    gateway = LocalGateway(max_request_bytes=1000)
    response = gateway.handle(method="POST", path=PATH, raw_query="", headers={"Content-Type": FORM}, body=b"x" * 2000)
    assert response.status == 413
    assert _error(response)["code"] == "file_too_large"


def test_unknown_routes_are_404_envelopes(gateway: LocalGateway) -> None:
    response = gateway.handle(method="POST", path="/v1/nothing", raw_query="", headers={}, body=b"")
    assert response.status == 404
    assert _error(response)["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/audio/transcriptions", "POST"),
        ("DELETE", "/v1/models", "GET"),
        ("TRACE", "/v1/tasks/task-x-1-y", "DELETE, GET"),
    ],
)
def test_a_method_a_route_does_not_take_is_405_with_allow(
    gateway: LocalGateway, method: str, path: str, allow: str
) -> None:
    response = gateway.handle(method=method, path=path, raw_query="", headers={}, body=b"")
    assert response.status == 405
    assert response.headers["Allow"] == allow
    assert _error(response)["code"] == "method_not_allowed"


@pytest.mark.parametrize(("path", "status"), [("/api/v1/extract-audio", 405), ("/api/v2/Audio/transcribe", 405)])
def test_405_keeps_the_compatibility_routes_shape(gateway: LocalGateway, path: str, status: int) -> None:
    response = gateway.handle(method="PUT", path=path, raw_query="", headers={}, body=b"")
    assert response.status == status
    body = json.loads(response.body)
    if path.startswith("/api/v1/extract-audio"):
        assert isinstance(body["error"], str)
    else:
        assert body["error"]["code"] == "method_not_allowed"


def test_insufficient_balance_is_402_and_nothing_is_charged(gateway: LocalGateway, data_dir: Path, wav: bytes) -> None:
    from earshot.services.accounts import create_key

    poor = create_key(get_runtime().store, name="poor", balance_micro_usd=899)
    response = _post(gateway, poor.secret, _multipart({}, {"file": ("a.wav", wav)}), FORM)
    assert response.status == 402
    assert _error(response)["code"] == "billing_error"
    account = get_runtime().store.get_account(poor.account.id)
    assert account is not None and account.balance_micro_usd == 899


def test_the_413_names_the_upload_route(
    gateway: LocalGateway, new_key: NewKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EARSHOT_MAX_INLINE_BYTES", str(4_400_000))  # the deployed limit
    from earshot.runtime import reset_runtime

    reset_runtime()
    response = _post(gateway, new_key.secret, _multipart({}, {"file": ("big.wav", b"\0" * 5_000_000)}), FORM)
    assert response.status == 413
    message = str(_error(response)["message"])
    assert "4.2 MB" in message and "/v1/uploads" in message
