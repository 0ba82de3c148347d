"""Signed webhooks, as the Standard Webhooks spec has them (https://www.standardwebhooks.com).

A delivery is a POST of the final task object with three headers: ``webhook-id`` (the same on every
retry of one message, so a receiver can drop duplicates), ``webhook-timestamp`` (unix seconds of
this attempt) and ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``,
keyed with the account's secret. Secrets are ``whsec_<base64 of 32 random bytes>``, so any Standard
Webhooks library verifies our deliveries; ``verify`` here is the same check, for tests and docs.

Deliveries go out through the SSRF-safe fetcher (``fetcher.post_json``): the callback URL obeys the
same address rules as an audio URL, on every attempt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from earshot.adapters.fetcher import post_json
from earshot.errors import InvalidRequestError
from earshot.observability import logger

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SEC = 5 * 60  # the spec's recommended window against replays
_SECRET_BYTES = 32


class WebhookVerificationError(ValueError):
    """A delivery that does not verify: headers missing, timestamp outside the tolerance, or no matching signature.

    A receiver's error, never sent to an API client, so not an ``EarshotError``.
    """


class PostJson(Protocol):
    """What ``deliver`` needs from the transport (``fetcher.post_json``): POST, return the status code."""

    def __call__(
        self, url: str, body: bytes, headers: Mapping[str, str], *, deadline_sec: float, allow_loopback: bool = False
    ) -> int: ...


class DeliveryAttempt(BaseModel):
    attempt: int
    timestamp: int
    status_code: int | None = None
    error: str | None = None


class WebhookDelivery(BaseModel):
    """What happened to one message: JSON-able, for the task's record and the workflow state."""

    msg_id: str
    delivered: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None
    delivered_at: int | None = None
    history: list[DeliveryAttempt] = Field(default_factory=list)


# -- secrets and signatures ----------------------------------------------------------------------------
def generate_secret() -> str:
    """A new signing secret, ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def _secret_key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a webhook secret is whsec_ followed by base64") from exc
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def new_message_id() -> str:
    return f"msg_{secrets.token_urlsafe(18)}"


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "<msg_id>.<timestamp>.<body>">`` keyed with the decoded ``secret``."""
    digest = hmac.new(_secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_sec: int = DEFAULT_TOLERANCE_SEC,
    now: int | None = None,
) -> None:
    """Check a delivery as a receiver would; return quietly when it is authentic and fresh.

    Parameters
    ----------
    headers
        The request headers (any case). ``webhook-signature`` may carry several space-separated
        signatures (during a secret rotation); one matching ``v1`` signature is enough.
    tolerance_sec
        How far ``webhook-timestamp`` may be from ``now``, either way (replay protection).

    Raises
    ------
    WebhookVerificationError
        A header is missing or malformed, the timestamp is outside the tolerance, or no signature matches.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    timestamp_text = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and timestamp_text and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not timestamp_text.isdigit():
        raise WebhookVerificationError("webhook-timestamp is not a unix timestamp")
    timestamp = int(timestamp_text)
    current = int(time.time()) if now is None else now
    if timestamp < current - tolerance_sec:
        raise WebhookVerificationError("webhook-timestamp is too old")
    if timestamp > current + tolerance_sec:
        raise WebhookVerificationError("webhook-timestamp is too far in the future")
    expected = sign(secret, msg_id, timestamp, body).partition(",")[2].encode("ascii")
    for versioned in signatures.split(" "):
        version, _, signature = versioned.partition(",")
        if version == SIGNATURE_VERSION and hmac.compare_digest(signature.encode("ascii", "replace"), expected):
            return
    raise WebhookVerificationError("no matching signature")


# -- delivery --------------------------------------------------------------------------------------------
def _host(url: str) -> str:
    """What a log may say about a callback URL: its host (paths and queries can carry tokens)."""
    try:
        return urlsplit(url).hostname or "<none>"
    except ValueError:
        return "<invalid>"


def deliver(
    url: str,
    task_json: bytes,
    secret: str,
    *,
    msg_id: str | None = None,
    attempts: int = 5,
    backoff: float = 1.0,
    max_backoff: float = 60.0,
    deadline_sec: float = 10.0,
    allow_loopback: bool = False,
    post: PostJson = post_json,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> WebhookDelivery:
    """POST ``task_json`` to ``url``, signed, until a 2xx answer or ``attempts`` tries; never raises for the receiver.

    Each attempt is signed afresh with its own timestamp under the same ``msg_id``. A non-2xx status
    (redirects are not followed) or a transport failure (refused address, no connection, no answer
    within ``deadline_sec``) is a failed attempt; before attempt *n + 1* it waits
    ``min(backoff * 2 ** (n - 1), max_backoff)`` seconds.

    Parameters
    ----------
    msg_id
        Pass a stable id per task (``f"msg_{task_id}"``) so a re-driven delivery is recognisably the
        same message; a random one otherwise.
    allow_loopback
        Testing mode of the fetcher's address rules (loopback receivers, plain http).

    Returns
    -------
    WebhookDelivery
        ``delivered`` and the last status or error, with every attempt in ``history``.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    message = msg_id or new_message_id()
    record = WebhookDelivery(msg_id=message, delivered=False, attempts=0)
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            sleep(min(backoff * 2 ** (attempt - 2), max_backoff))
        timestamp = int(clock())
        outcome = DeliveryAttempt(attempt=attempt, timestamp=timestamp)
        try:
            outcome.status_code = post(
                url,
                task_json,
                signed_headers(secret, message, timestamp, task_json),
                deadline_sec=deadline_sec,
                allow_loopback=allow_loopback,
            )
        except InvalidRequestError as exc:
            outcome.error = exc.message
        record.history.append(outcome)
        record.attempts, record.status_code, record.error = attempt, outcome.status_code, outcome.error
        if outcome.status_code is not None and 200 <= outcome.status_code < 300:
            record.delivered, record.delivered_at = True, timestamp
            logger.info("webhook delivered", extra={"msg_id": message, "host": _host(url), "attempts": attempt})
            return record
        if outcome.status_code is not None:
            record.error = f"the callback_url answered {outcome.status_code}"
        logger.info(
            "webhook attempt failed",
            extra={"msg_id": message, "host": _host(url), "attempt": attempt, "status": outcome.status_code},
        )
    logger.warning("webhook not delivered", extra={"msg_id": message, "host": _host(url), "attempts": attempts})
    return record
