"""``Idempotency-Key`` on POST routes: a retried request is answered once and charged once.

Driven through the local gateway in-process (authorizer + handler, as `make serve` runs them) against a
real SQLite data dir and the embedded Whisper engine, on one second of audio.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from audio_fixtures import audio_bytes

from earshot.engines.base import Transcript, TranscriptionOptions
from earshot.errors import EngineError
from earshot.local.server import GatewayResponse, LocalGateway
from earshot.runtime import get_runtime
from earshot.services.accounts import NewKey, create_key

MB = 1024 * 1024
PATH = "/v1/audio/transcriptions"
FORM = "multipart/form-data; boundary=BOUNDARY"
OPENING_BALANCE = 1_000_000


@pytest.fixture
def gateway(data_dir: Path) -> LocalGateway:
    return LocalGateway(max_request_bytes=26 * MB)


@pytest.fixture(scope="module")
def wav() -> bytes:
    audio: bytes = audio_bytes("wav", 1.0)
    return audio


def _form(wav: bytes, **fields: str) -> bytes:
    out = b""
    for name, value in fields.items():
        out += f'--BOUNDARY\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    out += (
        b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" + wav + b"\r\n"
    )
    return out + b"--BOUNDARY--\r\n"


def _post(
    gateway: LocalGateway, secret: str, body: bytes, idempotency_key: str | None, **extra_headers: str
) -> GatewayResponse:
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": FORM, **extra_headers}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return gateway.handle(method="POST", path=PATH, raw_query="", headers=headers, body=body)


def _error(response: GatewayResponse) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(response.body)["error"]
    return error


def _debits(account_id: str) -> list[int]:
    return [e.amount_micro_usd for e in get_runtime().store.list_ledger(account_id) if e.kind == "debit"]


def _balance(account_id: str) -> int:
    account = get_runtime().store.get_account(account_id)
    assert account is not None
    return account.balance_micro_usd


def test_a_retry_replays_the_first_response_and_charges_once(
    gateway: LocalGateway, new_key: NewKey, wav: bytes
) -> None:
    body = _form(wav)

    first = _post(gateway, new_key.secret, body, "retry-1")
    second = _post(gateway, new_key.secret, body, "retry-1")

    assert first.status == second.status == 200, first.body
    assert second.body == first.body
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Content-Type"] == first.headers["Content-Type"]
    assert second.headers["X-Request-Id"] != first.headers["X-Request-Id"]  # each exchange has its own id
    [debit] = _debits(new_key.account.id)
    assert _balance(new_key.account.id) == OPENING_BALANCE + debit
    assert json.loads(second.body)["billing"]["balance_usd"] == json.loads(first.body)["billing"]["balance_usd"]


def test_a_retry_with_a_fresh_multipart_boundary_is_the_same_request(
    gateway: LocalGateway, new_key: NewKey, wav: bytes
) -> None:
    # curl and HTTP client libraries draw a new boundary for every attempt
    body = _form(wav)
    redrawn = body.replace(b"BOUNDARY", b"a1b2c3d4e5")
    headers = {"Authorization": f"Bearer {new_key.secret}", "Idempotency-Key": "curl-retry"}

    first = _post(gateway, new_key.secret, body, "curl-retry")
    second = gateway.handle(
        method="POST",
        path=PATH,
        raw_query="",
        headers={**headers, "Content-Type": "multipart/form-data; boundary=a1b2c3d4e5"},
        body=redrawn,
    )

    assert first.status == second.status == 200, second.body
    assert second.headers["Idempotent-Replayed"] == "true" and second.body == first.body
    assert len(_debits(new_key.account.id)) == 1


def test_a_text_response_replays_with_its_billing_headers(gateway: LocalGateway, new_key: NewKey, wav: bytes) -> None:
    body = _form(wav, response_format="srt")

    first = _post(gateway, new_key.secret, body, "srt-1")
    second = _post(gateway, new_key.secret, body, "srt-1")

    assert first.status == second.status == 200, first.body
    assert second.body == first.body
    billing = {name: value for name, value in first.headers.items() if name.startswith("X-Earshot-")}
    assert billing and all(second.headers[name] == value for name, value in billing.items())
    assert len(_debits(new_key.account.id)) == 1


def test_the_same_key_with_another_body_is_a_conflict(gateway: LocalGateway, new_key: NewKey, wav: bytes) -> None:
    assert _post(gateway, new_key.secret, _form(wav), "reused").status == 200

    response = _post(gateway, new_key.secret, _form(wav, language="en"), "reused")

    assert response.status == 409
    error = _error(response)
    assert (error["code"], error["param"]) == ("idempotency_conflict", "Idempotency-Key")
    assert "Retry-After" not in response.headers  # retrying will not help: it needs a new key
    assert len(_debits(new_key.account.id)) == 1


def test_asking_for_async_under_a_used_key_is_a_conflict(gateway: LocalGateway, new_key: NewKey, wav: bytes) -> None:
    body = _form(wav)
    assert _post(gateway, new_key.secret, body, "sync-first").status == 200

    response = _post(gateway, new_key.secret, body, "sync-first", Prefer="respond-async")

    assert response.status == 409 and _error(response)["code"] == "idempotency_conflict"
    assert len(_debits(new_key.account.id)) == 1


def test_a_client_error_replays_as_the_same_error(gateway: LocalGateway, new_key: NewKey, wav: bytes) -> None:
    body = _form(wav, response_format="xml")

    first = _post(gateway, new_key.secret, body, "bad-format")
    second = _post(gateway, new_key.secret, body, "bad-format")

    assert first.status == second.status == 400
    assert _error(first)["code"] == "invalid_request"
    assert second.body == first.body
    assert second.headers["Idempotent-Replayed"] == "true"
    # the key is spent on that request: the corrected request needs a new key
    assert _post(gateway, new_key.secret, _form(wav), "bad-format").status == 409
    assert _debits(new_key.account.id) == []


def test_concurrent_duplicates_run_once_and_charge_once(gateway: LocalGateway, new_key: NewKey, wav: bytes) -> None:
    body = _form(wav)
    start = threading.Barrier(20)

    def send(_: int) -> GatewayResponse:
        start.wait()
        return _post(gateway, new_key.secret, body, "burst")

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(send, range(20)))

    succeeded = [r for r in responses if r.status == 200]
    in_flight = [r for r in responses if r.status == 409]
    assert len(succeeded) + len(in_flight) == 20, [r.status for r in responses]
    assert succeeded and len({r.body for r in succeeded}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in succeeded) == 1  # the one that ran
    assert all(_error(r)["code"] == "idempotency_conflict" and r.headers["Retry-After"] for r in in_flight)
    assert len(_debits(new_key.account.id)) == 1
    # a client that honoured Retry-After now gets the same answer, still for one charge
    retried = _post(gateway, new_key.secret, body, "burst")
    assert (retried.status, retried.body) == (200, succeeded[0].body)
    assert len(_debits(new_key.account.id)) == 1


def test_keys_belong_to_one_account(gateway: LocalGateway, new_key: NewKey, wav: bytes) -> None:
    other = create_key(get_runtime().store, name="other", balance_micro_usd=OPENING_BALANCE)
    body = _form(wav)

    mine = _post(gateway, new_key.secret, body, "shared-key")
    theirs = _post(gateway, other.secret, body, "shared-key")

    assert mine.status == theirs.status == 200
    assert "Idempotent-Replayed" not in theirs.headers
    assert len(_debits(new_key.account.id)) == len(_debits(other.account.id)) == 1


class _FailingOnce:
    """The real engine, except that its first transcription fails as a crashed engine would."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.failures_left = 1

    def check(self, options: TranscriptionOptions) -> None:
        self.engine.check(options)

    def transcribe(self, audio: Path, options: TranscriptionOptions) -> Transcript:
        if self.failures_left:
            self.failures_left -= 1
            raise EngineError("the engine crashed")
        transcript: Transcript = self.engine.transcribe(audio, options)
        return transcript


def test_a_server_error_is_not_replayed_so_the_retry_runs(
    gateway: LocalGateway, new_key: NewKey, wav: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = get_runtime()
    flaky = _FailingOnce(runtime.transcription_engine(runtime.catalog.resolve_transcription("transcribe")))
    monkeypatch.setattr(runtime, "transcription_engine", lambda model: flaky)
    body = _form(wav)

    failed = _post(gateway, new_key.secret, body, "after-crash")
    retried = _post(gateway, new_key.secret, body, "after-crash")

    assert failed.status == 502 and _error(failed)["code"] == "provider_error"
    assert retried.status == 200 and "Idempotent-Replayed" not in retried.headers
    ledger = [e.kind for e in runtime.store.list_ledger(new_key.account.id)]
    assert sorted(ledger) == ["debit", "debit", "refund", "topup"]  # the failed attempt was refunded
    assert _balance(new_key.account.id) == OPENING_BALANCE + _debits(new_key.account.id)[0]


@pytest.mark.parametrize("bad_key", ["", "k" * 256, "caf\u00e9", "tab\there", "line\x7f"])
def test_a_malformed_key_is_rejected_before_any_work(
    gateway: LocalGateway, new_key: NewKey, wav: bytes, bad_key: str
) -> None:
    response = _post(gateway, new_key.secret, _form(wav), bad_key)

    assert response.status == 400
    error = _error(response)
    assert (error["code"], error["param"]) == ("invalid_request", "Idempotency-Key")
    assert _debits(new_key.account.id) == []


def test_the_longest_key_is_accepted(gateway: LocalGateway, new_key: NewKey, wav: bytes) -> None:
    assert _post(gateway, new_key.secret, _form(wav), "k" * 255).status == 200
