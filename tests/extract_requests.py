"""extract-audio requests through the local gateway in-process, for the suites that probe its ``schema`` field."""

from __future__ import annotations

import base64
import json
from typing import Any

from audio_fixtures import audio_bytes

from earshot.local.server import GatewayResponse, LocalGateway
from earshot.runtime import get_runtime
from earshot.services.accounts import NewKey

GATEWAY = LocalGateway(max_request_bytes=26 * 1024 * 1024)
WAV = base64.b64encode(audio_bytes("wav", 2.0, sample_rate=16000)).decode()


def extract(account: NewKey, schema: Any, **extra: Any) -> GatewayResponse:
    """``POST /api/v1/extract-audio`` with two seconds of base64 WAV, ``schema`` and any ``extra`` fields."""
    payload = {"inputMethod": "base64", "audio": WAV, "prompt": "Describe", "schema": schema, **extra}
    return GATEWAY.handle(
        method="POST",
        path="/api/v1/extract-audio",
        raw_query="",
        headers={"Authorization": f"Bearer {account.secret}", "Content-Type": "application/json"},
        body=json.dumps(payload).encode(),
    )


def balance(account: NewKey) -> int:
    found = get_runtime().store.get_account(account.account.id)
    assert found is not None
    return found.balance_micro_usd
