"""Responses written chunk by chunk (Server-Sent Events), where the invoker can stream.

A route that streams returns ``Response(body=StreamBody(chunks))``. The local gateway recognises a
``StreamBody`` and writes each chunk as it is produced (chunked transfer). Lambda's Python runtime cannot
stream a response (see docs/decisions.md), so where the invoker does not advertise streaming
(``context.response_streaming``), ``stream_response`` collapses the same chunks into one body: the
events are identical, they just arrive together.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.http.request import ApiRequest

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class StreamBody:
    """An iterable of byte chunks; iterating it runs the producer, so it is consumed once."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:  # a generator's cleanup (finally blocks) runs on close
            close()


def sse(data: Any, *, event: str | None = None, id: int | str | None = None, retry_ms: int | None = None) -> bytes:
    """One Server-Sent Event; ``data`` that is not a string is JSON."""
    lines = []
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    lines.extend(f"data: {line}" for line in text.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


def sse_comment(text: str = "keep-alive") -> bytes:
    """A comment line: EventSource ignores it, proxies and clients see the connection is alive."""
    return f": {text}\n\n".encode()


def can_stream(request: ApiRequest) -> bool:
    """Whether chunks reach the caller as produced. A request with an Idempotency-Key is answered whole,
    so that a retry replays exactly the same bytes."""
    return request.streaming and "idempotency-key" not in request.headers


def stream_response(
    request: ApiRequest,
    chunks: Iterable[bytes],
    *,
    content_type: str = "text/event-stream",
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    """``chunks`` streamed where the invoker can, else collected into one body."""
    merged = {**SSE_HEADERS, **(headers or {})}
    if can_stream(request):
        return Response(status_code=200, content_type=content_type, body=StreamBody(chunks), headers=merged)
    return Response(status_code=200, content_type=content_type, body=b"".join(chunks).decode(), headers=merged)
