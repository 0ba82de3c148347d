"""Requests through the local gateway in-process (no HTTP server): the one client of the integration suites.

``call`` is what API Gateway + Lambda would do with one request; ``form`` builds the multipart body the audio routes
take; ``balance`` reads what the account was left with. The e2e suites drive a real server instead.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from audio_fixtures import audio_bytes

from earshot.local.server import GatewayResponse, LocalGateway
from earshot.runtime import get_runtime
from earshot.services.accounts import NewKey

GATEWAY = LocalGateway(max_request_bytes=26 * 1024 * 1024)
FORM_TYPE = "multipart/form-data; boundary=B"
# Two seconds of 16 kHz WAV: the default upload, and (base64) the default extract-audio input.
WAV = audio_bytes("wav", 2.0, sample_rate=16000)
WAV_B64 = base64.b64encode(WAV).decode()


def form(fields: dict[str, str], file: bytes | None = WAV, filename: str = "a.wav") -> tuple[bytes, str]:
    """A multipart body of ``fields`` and (unless ``file`` is None) a ``file`` part, and its Content-Type."""
    out = b"".join(
        f'--B\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    if file is not None:
        out += f'--B\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n\r\n'.encode()
        out += file + b"\r\n"
    return out + b"--B--\r\n", FORM_TYPE


def call(
    method: str,
    path: str,
    key: str | None,
    body: bytes = b"",
    content_type: str = "",
    query: str = "",
    headers: dict[str, str] | None = None,
) -> GatewayResponse:
    """One request as the gateway would route it, with ``key`` as its bearer token (None: no Authorization)."""
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    if content_type:
        sent["Content-Type"] = content_type
    return GATEWAY.handle(method=method, path=path, raw_query=query, headers=sent, body=body)


def post_json(path: str, key: str | None, payload: Any) -> GatewayResponse:
    return call("POST", path, key, json.dumps(payload).encode(), "application/json")


def balance(account: NewKey) -> int:
    found = get_runtime().store.get_account(account.account.id)
    assert found is not None
    return found.balance_micro_usd


def ledger_kinds(account: NewKey) -> list[str]:
    return [entry.kind for entry in get_runtime().store.list_ledger(account.account.id)]


def extract(account: NewKey, schema: Any, **extra: Any) -> GatewayResponse:
    """``POST /api/v1/extract-audio`` with two seconds of base64 WAV, ``schema`` and any ``extra`` fields."""
    payload = {"inputMethod": "base64", "audio": WAV_B64, "prompt": "Describe", "schema": schema, **extra}
    return post_json("/api/v1/extract-audio", account.secret, payload)
