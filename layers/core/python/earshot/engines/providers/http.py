"""The one way Earshot calls an upstream over HTTP: a deadline, bounded retries, typed errors.

Every provider engine sends its requests through ``call_upstream``. It owns the whole retry budget (the
transport it is given must not retry on its own; ``default_http_client`` builds one that does not), so a
request is tried at most ``attempts`` times however it fails. Each attempt's timeout is what is left of the
caller's deadline, so a synchronous request still has time to answer inside the gateway's 30 s.
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from earshot.errors import EarshotError, ProviderError, ProviderTimeoutError
from earshot.observability import logger

RequestBuilder = Callable[[], httpx.Request]

# Statuses worth another attempt: rate limiting and the transient server-side failures.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Transport failures worth another attempt: the request may never have reached the upstream, or the connection
# died under it (a pooled keep-alive connection the server had already closed shows up as RemoteProtocolError).
_RETRYABLE_TRANSPORT_ERRORS = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
_MESSAGE_LIMIT = 500
# A timeout this close to the deadline is the deadline: no time is left for another attempt.
_DEADLINE_SLACK_SEC = 0.05
_REDACTED = "[redacted]"


@dataclass(frozen=True)
class RetryPolicy:
    """How ``call_upstream`` spaces its attempts; the clock, sleep and random source are injectable for tests.

    Attributes
    ----------
    base_delay_sec, max_delay_sec
        Full-jitter exponential backoff: before attempt *n + 1* sleep ``uniform(0, min(max, base * 2**(n-1)))``.
    min_attempt_sec
        An attempt needs at least this long to be worth starting; with less left, give up instead of sleeping.
    max_response_bytes
        Larger answers are refused (a misbehaving upstream must not exhaust the function's memory).
    """

    base_delay_sec: float = 0.25
    max_delay_sec: float = 4.0
    min_attempt_sec: float = 0.25
    max_response_bytes: int = 32 * 1024 * 1024
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    random_source: Callable[[], float] = random.random
    wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return self.random_source() * min(self.max_delay_sec, self.base_delay_sec * 2.0 ** (attempt - 1))


DEFAULT_POLICY = RetryPolicy()


def default_http_client() -> httpx.Client:
    """An ``httpx.Client`` fit for ``call_upstream``: no transport retries, no redirects, pooled connections.

    Engines keep the client for the life of the process, so a warm Lambda reuses its TLS connections.
    """
    return httpx.Client(
        # No Nagle: a request goes out as a head and body pieces in several writes, and the small last one (a
        # multipart form's closing boundary) would otherwise wait for the upstream's ACK of the piece before it.
        transport=httpx.HTTPTransport(retries=0, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]),
        follow_redirects=False,
        timeout=httpx.Timeout(30.0),
        headers={"user-agent": "earshot"},
    )


class _Failure(Exception):
    """One failed attempt: the error to raise if it is the last, and whether another attempt may help."""

    def __init__(self, error: EarshotError, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retryable = retryable
        self.retry_after = retry_after


def call_upstream(
    client: httpx.Client,
    request_builder: RequestBuilder,
    *,
    deadline_sec: float,
    attempts: int = 3,
    provider: str = "the upstream",
    redact: Sequence[str] = (),
    policy: RetryPolicy = DEFAULT_POLICY,
) -> Any:
    """Send the request ``request_builder`` builds until it succeeds, then return its JSON body.

    Parameters
    ----------
    client
        The connection pool. Its transport must not retry (``default_http_client``).
    request_builder
        Builds a fresh ``httpx.Request`` for each attempt (a multipart body is a stream, read once).
    deadline_sec
        Seconds from now by which the call must have answered or failed. Each attempt's connect, read and
        write timeouts are what remains of it, and the response body is read against it.
    attempts
        Attempts in all, the first included. Retried: connection failures, dropped connections, timeouts,
        429 and 500/502/503/504. A ``Retry-After`` (seconds or HTTP date) replaces the backoff when it fits
        in the time left; when it does not, the call gives up at once.
    provider
        The upstream's name for messages and logs ("OpenAI", "Gemini").
    redact
        Secrets (the API key) to strike from any text an upstream sends back before it reaches a message.
    policy
        Backoff and the injectable clock, sleep and random source.

    Returns
    -------
    Any
        The parsed JSON body of the first 2xx answer.

    Raises
    ------
    ProviderTimeoutError
        The deadline ran out (504).
    ProviderError
        The upstream refused the request (4xx other than 429, with its message), kept failing for
        ``attempts`` attempts, asked to be retried later than the deadline allows (``retry_after`` set), or
        answered 2xx with something that is not JSON (502).
    """
    deadline = policy.clock() + deadline_sec
    for attempt in range(1, attempts + 1):
        remaining = deadline - policy.clock()
        if remaining <= 0:
            raise _deadline_error(provider)
        try:
            return _attempt(
                client,
                request_builder(),
                deadline=deadline,
                remaining=remaining,
                provider=provider,
                redact=redact,
                policy=policy,
            )
        except _Failure as failure:
            if failure.retry_after is not None:  # passed on, so our caller's client knows when to come back
                failure.error.retry_after = math.ceil(failure.retry_after)
            if not failure.retryable or attempt == attempts:
                raise failure.error from failure.__cause__
            delay = failure.retry_after if failure.retry_after is not None else policy.backoff(attempt)
            if policy.clock() + delay + policy.min_attempt_sec > deadline:
                raise failure.error from failure.__cause__
            logger.warning(
                "upstream attempt failed; retrying",
                extra={
                    "provider": provider,
                    "attempt": attempt,
                    "reason": failure.error.message,
                    "delay_sec": round(delay, 3),
                },
            )
            policy.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover


def _attempt(
    client: httpx.Client,
    request: httpx.Request,
    *,
    deadline: float,
    remaining: float,
    provider: str,
    redact: Sequence[str],
    policy: RetryPolicy,
) -> Any:
    request.extensions["timeout"] = httpx.Timeout(remaining).as_dict()
    try:
        response = client.send(request, stream=True)
        try:
            body = _read_body(response, deadline=deadline, provider=provider, policy=policy)
        finally:
            response.close()
    except httpx.TimeoutException as exc:
        if policy.clock() >= deadline - _DEADLINE_SLACK_SEC:
            raise _Failure(_deadline_error(provider), retryable=False) from exc
        raise _Failure(ProviderTimeoutError(f"{provider} timed out"), retryable=True) from exc
    except _RETRYABLE_TRANSPORT_ERRORS as exc:
        raise _Failure(ProviderError(f"could not reach {provider} ({type(exc).__name__})"), retryable=True) from exc
    except httpx.HTTPError as exc:
        raise _Failure(ProviderError(f"the call to {provider} failed ({type(exc).__name__})"), retryable=False) from exc

    status = response.status_code
    if 200 <= status < 300:
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Failure(ProviderError(f"{provider} answered with malformed JSON"), retryable=False) from exc
    message = _upstream_message(body, redact)
    detail = f": {message}" if message else ""
    if status in RETRYABLE_STATUSES:
        retry_after = _retry_after(response.headers.get("retry-after"), policy)
        error = ProviderError(f"{provider} is unavailable (HTTP {status}){detail}")
        raise _Failure(error, retryable=True, retry_after=retry_after)
    raise _Failure(ProviderError(f"{provider} rejected the request (HTTP {status}){detail}"), retryable=False)


def _deadline_error(provider: str) -> ProviderTimeoutError:
    return ProviderTimeoutError(f"{provider} did not answer in time; try again, or send long audio asynchronously")


def _read_body(response: httpx.Response, *, deadline: float, provider: str, policy: RetryPolicy) -> bytes:
    # httpx's read timeout bounds each read, not the whole body: a trickling upstream is cut off here.
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > policy.max_response_bytes:
            raise _Failure(ProviderError(f"{provider} sent an oversized response"), retryable=False)
        if policy.clock() > deadline:
            raise _Failure(_deadline_error(provider), retryable=False)
    return b"".join(chunks)


def _upstream_message(body: bytes, redact: Sequence[str]) -> str:
    """The human part of an upstream's error body: OpenAI's and Google's both say ``{"error": {"message"}}``."""
    text = body.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, list) and payload:  # Google sometimes wraps the error in a one-element list
        payload = payload[0]
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            text = error["message"]
        elif isinstance(error, str):
            text = error
        elif isinstance(payload.get("message"), str):
            text = payload["message"]
    for secret in redact:
        if secret:
            text = text.replace(secret, _REDACTED)
    text = " ".join(text.split())
    return text[:_MESSAGE_LIMIT] + ("..." if len(text) > _MESSAGE_LIMIT else "")


def _retry_after(value: str | None, policy: RetryPolicy) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3); None if absent."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - policy.wall_clock()).total_seconds())
