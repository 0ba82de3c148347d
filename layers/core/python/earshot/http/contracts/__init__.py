"""Error contracts: how each route family answers an ``EarshotError`` (shape, status, code).

Services raise one error hierarchy (``earshot.errors``); the route's contract turns an error into
its answer, in exactly one module per contract:

- ``openai``: the OpenAI-style envelope ``{"error": {message, type, code, param, request_id}}`` of the
  OpenAI-compatible and Earshot-native routes (DESIGN.md's status and code table).
- ``extract_audio``: ``{"error": "message"}`` with the extract-audio document's 400 / 401 / 500.
- ``v2``: the v2 Audio/transcribe document's statuses (400 / 401 / 403 / 404 / 500), messages in the
  request's ``?culture``.

The route manifest names each route's contract (``Route.errors``); the resolver, the idempotency
store's replays and the local server's own refusals all render through ``render_error``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from earshot.errors import EarshotError

ContractName = Literal["openai", "extract-audio", "v2"]


@dataclass(frozen=True)
class ErrorReply:
    status: int
    headers: dict[str, str]
    body: str


def render_error(
    error: EarshotError,
    *,
    request_id: str,
    contract: ContractName = "openai",
    query: Mapping[str, str] | None = None,
) -> ErrorReply:
    """``error`` as the answer of a route under ``contract`` (``query``: the request's, for its culture)."""
    if contract == "extract-audio":
        from earshot.http.contracts import extract_audio

        return extract_audio.render(error, request_id)
    if contract == "v2":
        from earshot.http.contracts import v2

        return v2.render(error, request_id, culture=(query or {}).get("culture"))
    from earshot.http.contracts import openai

    return openai.render(error, request_id)


def base_headers(error: EarshotError, request_id: str) -> dict[str, str]:
    """What every contract sends with an error: JSON, the request id, ``Retry-After`` where retrying helps."""
    headers = {"Content-Type": "application/json", "X-Request-Id": request_id}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    headers.update(error.headers)
    return headers
