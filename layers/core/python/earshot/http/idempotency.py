"""``Idempotency-Key`` on POST routes: run a request once, replay its response to every retry.

The request is fingerprinted (method, path, raw query, content type, ``Prefer`` and the decoded body)
before the endpoint runs, because form parsing drops the body. ``IdempotencyStore.begin`` then decides:

- a new key: run the endpoint and store what the client got, a success or a 4xx alike (a replay of a
  400 is the same 400); a 5xx, an unexpected exception, or an error that says "retry shortly" (429,
  or anything carrying ``Retry-After``) is not stored, so a retry runs again;
- the same key and request, finished: replay the stored response with ``Idempotent-Replayed: true``,
  never running the endpoint (so never charging) again;
- the same key with another request, or the same request still in flight: the store raises
  ``IdempotencyConflictError`` (409, with ``Retry-After`` for the in-flight case).

Keys are scoped per account and live ``IDEMPOTENCY_TTL_SEC`` (24 h).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Callable
from email.message import Message
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.errors import EarshotError, InternalError, InvalidRequestError
from earshot.http.contracts import ContractName, render_error
from earshot.http.multipart import is_multipart
from earshot.http.request import ApiRequest
from earshot.observability import logger
from earshot.ports import IdempotencyStore, IdempotentResponse

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}")
# Headers that describe one HTTP exchange, not the outcome: a replay gets its own.
_PER_REQUEST_HEADERS = frozenset({"x-request-id"})
_PER_REQUEST_PREFIXES = ("x-ratelimit-",)
# Locally the handler is not killed at its deadline as a Lambda is; a little slack keeps a slow
# first attempt's lease from lapsing (and a duplicate from running) while it is still finishing.
_LEASE_GRACE_SEC = 5


def idempotency_key(request: ApiRequest) -> str | None:
    """The request's ``Idempotency-Key``, None without one; a 400 when it is not 1-255 printable ASCII."""
    key = request.headers.get(IDEMPOTENCY_KEY_HEADER.lower())
    if key is None:
        return None
    if not _VALID_KEY.fullmatch(key):
        raise InvalidRequestError(
            f"{IDEMPOTENCY_KEY_HEADER} must be 1 to 255 printable ASCII characters", param=IDEMPOTENCY_KEY_HEADER
        )
    return key


def request_fingerprint(request: ApiRequest, raw_query: str) -> str:
    """SHA-256 of what makes two requests the same request; each part length-prefixed so none can bleed.

    ``Prefer`` counts too: ``respond-async`` turns the same body into another request (a 202 and a task).
    A multipart boundary does not: curl and the HTTP client libraries draw a new one for every attempt,
    so a retried upload would otherwise never match its first attempt.
    """
    content_type, body = _without_boundary(request.content_type, request.body_bytes())
    digest = hashlib.sha256()
    parts = (request.method, request.path, raw_query, content_type, request.headers.get("prefer", ""))
    for part in (*(text.encode() for text in parts), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _without_boundary(content_type: str, body: bytes) -> tuple[str, bytes]:
    if not is_multipart(content_type):
        return content_type, body
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return content_type, body
    # RFC 2046: a boundary never occurs inside the parts, so replacing its delimiters changes nothing else.
    return "multipart/form-data", body.replace(b"--" + boundary.encode("latin-1", "replace"), b"--<boundary>")


def run_idempotently(
    request: ApiRequest,
    endpoint: Callable[[ApiRequest], Response[Any]],
    *,
    store: IdempotencyStore,
    account_id: str,
    raw_query: str,
    contract: ContractName = "openai",
    on_stored: Callable[[], None] | None = None,
) -> Response[Any]:
    """Run ``endpoint`` under the request's ``Idempotency-Key`` (plainly when it has none).

    ``on_stored`` runs once a response is stored for replay: the charge of a keyed request stays a
    hold until then, so a crash before it is refunded by recovery and the retry charges once in total.

    Raises
    ------
    InvalidRequestError
        The key header is malformed.
    IdempotencyConflictError
        The key was used for another request, or the same request is still in flight.
    """
    key = idempotency_key(request)
    if key is None:
        return endpoint(request)
    fingerprint = request_fingerprint(request, raw_query)  # before the endpoint: form parsing drops the body
    record = store.begin(account_id, key, fingerprint, lease_sec=_lease_sec(request))
    if record.status == "completed":
        if record.response is None:  # the port promises one; never run the request again over a broken record
            raise InternalError(f"the idempotency record for this {IDEMPOTENCY_KEY_HEADER} has no response")
        logger.info("idempotent replay", extra={"status": record.response.status_code})
        return replay(record.response)

    try:
        response = endpoint(request)
    except EarshotError as error:
        if error.status < 500 and not _asks_for_retry(error):
            _complete(store, account_id, key, _error_snapshot(error, request, contract))
        else:
            _release(store, account_id, key)
        raise
    except BaseException:
        _release(store, account_id, key)
        raise
    if response.status_code < 500:
        _complete(store, account_id, key, snapshot(response))
        if on_stored is not None:
            on_stored()
    else:
        _release(store, account_id, key)
    return response


def snapshot(response: Response[Any]) -> IdempotentResponse:
    """What to replay of ``response``: status, lasting headers and body (binary bodies in base64).

    A body that is neither text nor bytes is serialized here, and ``response`` is given that text, so
    the first answer and its replays are byte for byte the same.
    """
    body: Any = response.body
    if body is None:
        text, is_base64 = "", False
    elif isinstance(body, bytes):
        text, is_base64 = base64.b64encode(body).decode("ascii"), True
    elif isinstance(body, str):
        text, is_base64 = body, False
    else:
        text, is_base64 = json.dumps(body, separators=(",", ":"), default=str), False
        response.body = text
    headers = {name: value if isinstance(value, str) else ",".join(value) for name, value in response.headers.items()}
    return IdempotentResponse(
        status_code=response.status_code,
        headers=_lasting(headers),
        body=text,
        is_base64_encoded=is_base64,
    )


def replay(stored: IdempotentResponse) -> Response[Any]:
    body: str | bytes = base64.b64decode(stored.body) if stored.is_base64_encoded else stored.body
    return Response(status_code=stored.status_code, body=body, headers={**stored.headers, REPLAYED_HEADER: "true"})


def _error_snapshot(error: EarshotError, request: ApiRequest, contract: ContractName) -> IdempotentResponse:
    reply = render_error(error, request_id=request.request_id, contract=contract, query=request.query)
    return IdempotentResponse(status_code=reply.status, headers=_lasting(reply.headers), body=reply.body)


def _lasting(headers: dict[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in headers.items()
        if name.lower() not in _PER_REQUEST_HEADERS and not name.lower().startswith(_PER_REQUEST_PREFIXES)
    }


def _asks_for_retry(error: EarshotError) -> bool:
    """A 429, or an error with ``Retry-After``: transient by its own account, so replaying it would be wrong."""
    # 402 too: its message says "top up and retry", and the retry must then run, not replay the 402.
    return error.status in (402, 429) or error.retry_after is not None


def _lease_sec(request: ApiRequest) -> int:
    if request.remaining_ms is None:
        return 900  # no deadline known: the store's default
    return math.ceil(request.remaining_ms() / 1000) + _LEASE_GRACE_SEC


def _complete(store: IdempotencyStore, account_id: str, key: str, response: IdempotentResponse) -> None:
    # The endpoint has already run (and may have charged): failing to record it must not fail the request.
    try:
        store.complete(account_id, key, response)
    except Exception:
        logger.exception("could not store an idempotent response", extra={"status": response.status_code})


def _release(store: IdempotencyStore, account_id: str, key: str) -> None:
    # Never mask the request's own error; an unreleased record frees itself when its lease ends.
    try:
        store.release(account_id, key)
    except Exception:
        logger.exception("could not release an idempotency key")
