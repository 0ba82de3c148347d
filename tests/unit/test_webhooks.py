"""Standard Webhooks signing and the delivery retry loop (the transport is a fake here; see
``tests/integration/test_webhook_delivery.py`` for a real receiver)."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping

import pytest

from earshot.errors import InvalidRequestError
from earshot.webhooks import (
    WebhookVerificationError,
    deliver,
    generate_secret,
    sign,
    signed_headers,
    verify,
)

# The known-answer vector of the Standard Webhooks reference libraries (their ``test_sign_function``).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_sign_matches_the_spec_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    # The reference libraries accept the secret without its prefix too.
    assert sign(SPEC_SECRET.removeprefix("whsec_"), SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_the_spec_vector_verifies() -> None:
    headers = {"webhook-id": SPEC_MSG_ID, "webhook-timestamp": str(SPEC_TIMESTAMP), "webhook-signature": SPEC_SIGNATURE}

    verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP + 10)


def test_a_generated_secret_is_whsec_and_32_random_bytes() -> None:
    secret = generate_secret()

    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]+=*", secret)
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert generate_secret() != secret


def _headers(secret: str, body: bytes, timestamp: int = 1_700_000_000) -> dict[str, str]:
    return signed_headers(secret, "msg_task-llm-1700000000-abcdefgh", timestamp, body)


def test_verify_accepts_what_sign_produced_in_any_header_case() -> None:
    secret = generate_secret()
    body = b'{"id": "task-llm-1700000000-abcdefgh", "status": "completed"}'
    headers = {name.upper(): value for name, value in _headers(secret, body).items()}

    verify(secret, headers, body, now=1_700_000_000)


def test_verify_rejects_a_tampered_body() -> None:
    secret = generate_secret()
    headers = _headers(secret, b'{"status": "completed"}')

    with pytest.raises(WebhookVerificationError, match="signature"):
        verify(secret, headers, b'{"status": "completed "}', now=1_700_000_000)


def test_verify_rejects_another_secret_and_another_message_id() -> None:
    secret = generate_secret()
    body = b"{}"
    headers = _headers(secret, body)

    with pytest.raises(WebhookVerificationError):
        verify(generate_secret(), headers, body, now=1_700_000_000)
    with pytest.raises(WebhookVerificationError):
        verify(secret, {**headers, "webhook-id": "msg_other"}, body, now=1_700_000_000)


@pytest.mark.parametrize("skew", [-301, 301])
def test_verify_rejects_a_timestamp_outside_the_tolerance(skew: int) -> None:
    secret = generate_secret()
    headers = _headers(secret, b"{}", timestamp=1_700_000_000)

    with pytest.raises(WebhookVerificationError, match="timestamp"):
        verify(secret, headers, b"{}", now=1_700_000_000 - skew)
    verify(secret, headers, b"{}", now=1_700_000_000 - skew, tolerance_sec=abs(skew))


def test_verify_rejects_a_re_signed_old_timestamp_swap() -> None:
    # A replayed body with a fresh timestamp header but the old signature does not verify.
    secret = generate_secret()
    old = _headers(secret, b"{}", timestamp=1_700_000_000)

    with pytest.raises(WebhookVerificationError, match="signature"):
        verify(secret, {**old, "webhook-timestamp": "1700000900"}, b"{}", now=1_700_000_900)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_needs_all_three_headers(missing: str) -> None:
    secret = generate_secret()
    headers = _headers(secret, b"{}")
    del headers[missing]

    with pytest.raises(WebhookVerificationError, match="missing"):
        verify(secret, headers, b"{}", now=1_700_000_000)


def test_verify_accepts_one_good_signature_among_several() -> None:
    secret = generate_secret()
    headers = _headers(secret, b"{}")
    headers["webhook-signature"] = f"v1,bm9wZQ== v2,whatever {headers['webhook-signature']}"

    verify(secret, headers, b"{}", now=1_700_000_000)


def test_verify_rejects_a_malformed_timestamp() -> None:
    secret = generate_secret()
    headers = {**_headers(secret, b"{}"), "webhook-timestamp": "17e8"}

    with pytest.raises(WebhookVerificationError):
        verify(secret, headers, b"{}", now=1_700_000_000)


def test_a_secret_that_is_not_base64_is_refused() -> None:
    with pytest.raises(ValueError):
        sign("whsec_not base64!", "msg_1", 1, b"{}")


# -- delivery -----------------------------------------------------------------------------------------
class FakeReceiver:
    """A scripted transport: each call answers the next status, or raises the next error."""

    def __init__(self, *outcomes: int | Exception) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, bytes, dict[str, str], float, bool]] = []

    def __call__(
        self, url: str, body: bytes, headers: Mapping[str, str], *, deadline_sec: float, allow_loopback: bool = False
    ) -> int:
        self.calls.append((url, body, dict(headers), deadline_sec, allow_loopback))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class Clock:
    def __init__(self, start: int = 1_700_000_000) -> None:
        self.now = float(start)
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_delivery_retries_with_exponential_backoff_until_a_2xx() -> None:
    secret = generate_secret()
    body = b'{"id": "task-llm-1700000000-abcdefgh", "status": "completed"}'
    receiver = FakeReceiver(500, InvalidRequestError("could not connect", param="callback_url"), 429, 204)
    clock = Clock()

    record = deliver(
        "https://hooks.example.com/earshot?token=secret-token",
        body,
        secret,
        msg_id="msg_task-llm-1700000000-abcdefgh",
        attempts=5,
        backoff=2.0,
        post=receiver,
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )

    assert record.delivered and record.attempts == 4 and record.status_code == 204 and record.error is None
    assert clock.sleeps == [2.0, 4.0, 8.0]
    assert [attempt.status_code for attempt in record.history] == [500, None, 429, 204]
    assert record.history[1].error == "could not connect"
    assert record.delivered_at == record.history[-1].timestamp == 1_700_000_014
    for (_url, sent, headers, _deadline, _loopback), attempt in zip(receiver.calls, record.history, strict=True):
        assert sent == body
        assert headers["webhook-id"] == "msg_task-llm-1700000000-abcdefgh"  # one message, however many tries
        assert headers["webhook-timestamp"] == str(attempt.timestamp)  # each attempt signed afresh
        verify(secret, headers, sent, now=attempt.timestamp)


def test_delivery_gives_up_after_its_attempts_without_raising() -> None:
    receiver = FakeReceiver(500, 502, 410)
    clock = Clock()

    record = deliver(
        "https://hooks.example.com/x",
        b"{}",
        generate_secret(),
        attempts=3,
        backoff=1.0,
        max_backoff=1.5,
        post=receiver,
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )

    assert not record.delivered and record.attempts == 3 and record.delivered_at is None
    assert record.status_code == 410 and record.error == "the callback_url answered 410"
    assert clock.sleeps == [1.0, 1.5]  # capped by max_backoff
    assert record.msg_id.startswith("msg_")
    assert record.model_dump(mode="json")["history"][0]["status_code"] == 500  # JSON-able for the task


def test_a_redirect_is_not_a_delivery() -> None:
    record = deliver(
        "https://hooks.example.com/x",
        b"{}",
        generate_secret(),
        attempts=2,
        post=FakeReceiver(302, 302),
        sleep=lambda seconds: None,
    )

    assert not record.delivered and record.status_code == 302


def test_delivery_passes_the_deadline_and_loopback_mode_to_the_transport() -> None:
    receiver = FakeReceiver(200)

    deliver(
        "http://127.0.0.1:9/x",
        b"{}",
        generate_secret(),
        deadline_sec=3.5,
        allow_loopback=True,
        post=receiver,
        sleep=lambda seconds: None,
    )

    assert receiver.calls[0][0] == "http://127.0.0.1:9/x" and receiver.calls[0][3:] == (3.5, True)
