"""The local API: a threaded werkzeug server playing API Gateway in front of the real handlers.

Each request becomes an HTTP API v2 event; protected routes first go through
``functions/authorizer`` (as the gateway's Lambda authorizer), whose context is attached to the
event; then the route's function handler runs in-process and its response is written back.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import pybase64
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from earshot.errors import (
    EarshotError,
    FileTooLargeError,
    HeadersTooLargeError,
    InternalError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    RequestTargetTooLongError,
)
from earshot.http.contracts import ContractName, render_error
from earshot.http.streaming import StreamBody
from earshot.local.events import LocalContext, authorizer_event, http_event
from earshot.local.functions import load_handler
from earshot.local.web import with_web_pages
from earshot.observability import logger
from earshot.routes import ROUTES, Route
from earshot.services.audio_input import too_large

# The local stand-in for S3's presigned POST endpoint (see FileBlobStore.presign_upload).
LOCAL_UPLOAD_PREFIX = "/_local/uploads/"
# What a multipart form may add around the largest accepted file.
_FORM_OVERHEAD = 1024 * 1024
# Bodies are read in pieces of this size, so an oversized or endless (chunked) body stops at the limit.
_READ_CHUNK = 1024 * 1024
# After refusing a body, read at most this much more of it (lingering close), then close the connection.
_LINGER_BYTES = 4 * 1024 * 1024
_LINGER_SEC = 1.0
_HANDLER_KEY = "earshot.request_handler"
# A client that stops sending (a Content-Length larger than what it sends, an idle keep-alive) is dropped after this.
_SOCKET_TIMEOUT_SEC = 60


def _gateway_request_id() -> str:
    """An id for answers the gateway gives itself, before any function runs (as API Gateway's own)."""
    return f"gw-{secrets.token_hex(8)}"


@dataclass(frozen=True)
class _CompiledRoute:
    route: Route
    pattern: re.Pattern[str]


def _compile(route: Route) -> _CompiledRoute:
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route.path))
    return _CompiledRoute(route, re.compile(f"^{regex}$"))


@dataclass(frozen=True)
class GatewayResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    stream: Iterable[bytes] | None = None  # a streamed answer (see earshot.http.streaming): written as produced


class LocalGateway:
    """Routes, authorizes and invokes like API Gateway + Lambda, without HTTP (the server wraps it)."""

    def __init__(self, *, max_request_bytes: int, timeout_sec: float = 30.0) -> None:
        self.max_request_bytes = max_request_bytes
        self.timeout_sec = timeout_sec
        self._routes = [_compile(route) for route in ROUTES]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for compiled in self._routes:
            found = compiled.pattern.match(path)
            if found and compiled.route.method == method.upper():
                return compiled.route, found.groupdict()
        return None

    def _unrouted(self, method: str, path: str) -> tuple[EarshotError, str, ContractName]:
        """404 for a path no route has; 405 with ``Allow`` (in the path's contract) for a method it does not take."""
        routes = [c.route for c in self._routes if c.pattern.match(path)]
        if not routes:
            return NotFoundError(f"no route {method.upper()} {path}"), _gateway_request_id(), "openai"
        allowed = sorted({route.method for route in routes})
        error = MethodNotAllowedError(f"{method.upper()} is not allowed on {path}; use {', '.join(allowed)}")
        error.headers = {"Allow": ", ".join(allowed)}
        return error, _gateway_request_id(), routes[0].errors

    def too_large(
        self, content_length: int | None, contract: ContractName = "openai", limit: int | None = None
    ) -> GatewayResponse | None:
        limit = limit or self.max_request_bytes
        if content_length is not None and content_length > limit:
            error = too_large(content_length, limit - _FORM_OVERHEAD)
            return self._error(error, _gateway_request_id(), contract)
        return None

    def route_limits(self, method: str, path: str) -> tuple[ContractName, int]:
        """The error contract and body limit of the route ``method path`` (defaults when no route matches)."""
        matched = self.match(method, path)
        if matched is None:
            return "openai", self.max_request_bytes
        route = matched[0]
        return route.errors, max(self.max_request_bytes, route.max_body_bytes or 0)

    def handle(
        self, *, method: str, path: str, raw_query: str, headers: dict[str, str], body: bytes
    ) -> GatewayResponse:
        if path.startswith(LOCAL_UPLOAD_PREFIX) and method.upper() == "POST":
            return self._local_upload(path.removeprefix(LOCAL_UPLOAD_PREFIX), headers, body)
        matched = self.match(method, path)
        if matched is None:
            return self._error(*self._unrouted(method, path))
        route, path_params = matched
        if rejected := self.too_large(len(body), route.errors, max(self.max_request_bytes, route.max_body_bytes or 0)):
            return rejected
        event = http_event(
            method=method,
            path=path,
            route_key=f"{route.method} {route.path}",
            headers=headers,
            body=body,
            raw_query=raw_query,
            path_parameters=path_params,
        )
        request_id = event["requestContext"]["requestId"]
        try:
            if route.auth:
                decision = load_handler("authorizer")(authorizer_event(event), LocalContext("authorizer", 10.0))
                if not decision.get("isAuthorized"):
                    return GatewayResponse(403, {"Content-Type": "application/json"}, b'{"message":"Forbidden"}')
                event["requestContext"]["authorizer"] = {"lambda": decision.get("context") or {}}
            context = LocalContext(route.function, self.timeout_sec, response_streaming=True)
            result = load_handler(route.function)(event, context)
        except Exception:  # a handler that raises is a 502 from API Gateway; here, our envelope
            logger.exception("handler raised", extra={"function": route.function})
            return self._error(InternalError("internal error; it has been logged"), request_id, route.errors)
        return self._response(result)

    def _local_upload(self, token: str, headers: dict[str, str], body: bytes) -> GatewayResponse:
        """What S3 does with a presigned POST locally: check the signed policy, store, emit ObjectCreated."""
        from earshot.http.multipart import parse_multipart
        from earshot.runtime import get_runtime

        request_id = f"upload-{time.time_ns():x}"
        try:
            blobs = get_runtime().blobs
            verify = getattr(blobs, "verify_upload_token", None)
            if verify is None:
                raise NotFoundError("local uploads are served only by the local file blob store")
            key, max_bytes = verify(token)
            content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
            upload = parse_multipart(body, content_type).files.get("file")
            if upload is None:
                raise InvalidRequestError("the form has no 'file' field", param="file")
            if not 1 <= len(upload.data) <= max_bytes:
                raise FileTooLargeError(f"the upload must be 1 to {max_bytes} bytes, as declared", param="file")
            blobs.put(key, upload.data)
            version = hashlib.sha256(upload.data).hexdigest()[:16]
            event = {
                "Records": [
                    {
                        "eventSource": "aws:s3",
                        "eventName": "ObjectCreated:Post",
                        "s3": {"bucket": {"name": "local"}, "object": {"key": quote_plus(key), "versionId": version}},
                    }
                ]
            }
            load_handler("ingest")(event, LocalContext("ingest", 30.0))
        except EarshotError as error:
            return self._error(error, request_id)
        return GatewayResponse(204, {}, b"")

    @staticmethod
    def _response(result: dict[str, Any]) -> GatewayResponse:
        raw = result.get("body") or ""
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[str(name)] = ",".join(str(v) for v in values)
        if isinstance(raw, StreamBody):
            return GatewayResponse(int(result.get("statusCode", 200)), headers, b"", stream=raw)
        body = pybase64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
        return GatewayResponse(int(result.get("statusCode", 200)), headers, body)

    @staticmethod
    def _error(error: EarshotError, request_id: str, contract: ContractName = "openai") -> GatewayResponse:
        reply = render_error(error, request_id=request_id, contract=contract)
        return GatewayResponse(reply.status, reply.headers, reply.body.encode())


class _BodyError(Exception):
    """The request body could not be read as HTTP says it is framed."""

    def __init__(self, error: EarshotError) -> None:
        super().__init__(error.message)
        self.error = error


def _read_body(request: Request, limit: int | None) -> bytes:
    """The whole body, read in pieces and stopped as soon as it passes ``limit`` (chunked bodies included)."""
    pieces: list[bytes] = []
    size = 0
    stream = request.stream
    try:
        while piece := stream.read(_READ_CHUNK):
            size += len(piece)
            if limit is not None and size > limit:
                raise _BodyError(too_large(size, limit - _FORM_OVERHEAD))
            pieces.append(piece)
    except _BodyError:
        raise
    except (OSError, ValueError, HTTPException) as exc:
        # Bad chunk framing, or a client that closed before sending Content-Length bytes.
        raise _BodyError(
            InvalidRequestError("the request body is incomplete or its chunked framing is malformed")
        ) from exc
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def make_wsgi_app(gateway: LocalGateway) -> Any:
    def application(environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        started = time.perf_counter()
        uploading = request.path.startswith(LOCAL_UPLOAD_PREFIX)  # capped by its signed policy instead
        contract, limit = gateway.route_limits(request.method, request.path)
        rejected = None if uploading else gateway.too_large(request.content_length, contract, limit)
        if rejected is None:
            try:
                body = _read_body(request, None if uploading else limit)
            except _BodyError as failed:
                rejected = LocalGateway._error(failed.error, _gateway_request_id(), contract)
        if rejected is not None:
            result = rejected
        else:
            result = gateway.handle(
                method=request.method,
                path=request.path,
                raw_query=request.query_string.decode("latin-1"),
                headers=dict(request.headers.items()),
                body=body,
            )
        logger.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": result.status,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        response = Response(
            result.body if result.stream is None else result.stream, status=result.status, headers=result.headers
        )
        if rejected is not None:
            response.headers["Connection"] = "close"  # the rest of the body is never read
            handler = environ.get(_HANDLER_KEY)
            if isinstance(handler, EnvelopeRequestHandler):
                handler.stop_reading()
        return response(environ, start_response)

    return application


_PROTOCOL_ERRORS: dict[int, type[EarshotError]] = {414: RequestTargetTooLongError, 431: HeadersTooLargeError}


class _LingeringInput:
    """What is left of a refused body: read (and dropped) only briefly, so the client can still read the answer."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._left = _LINGER_BYTES
        self._until = time.monotonic() + _LINGER_SEC

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0 or time.monotonic() > self._until:
            return b""
        piece: bytes = self._raw.read1(min(self._left, _READ_CHUNK if size < 0 else min(size, _READ_CHUNK)))
        self._left -= len(piece)
        return piece

    def close(self) -> None:
        self._raw.close()


class EnvelopeRequestHandler(WSGIRequestHandler):
    """werkzeug's handler, but HTTP-level refusals (bad request line, oversized target or headers) use the envelope,
    and a refused body is not read to its end (werkzeug would drain up to 10 GB of an endless upload)."""

    timeout = _SOCKET_TIMEOUT_SEC

    def make_environ(self) -> Any:
        environ = super().make_environ()
        environ[_HANDLER_KEY] = self
        return environ

    def stop_reading(self) -> None:
        self.rfile = _LingeringInput(self.rfile)  # type: ignore[assignment]
        self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        error_class = _PROTOCOL_ERRORS.get(code, InvalidRequestError)  # everything else the client got wrong: 400
        error = error_class(f"malformed HTTP request: {message or 'unreadable'}")
        request_id = _gateway_request_id()
        reply = render_error(error, request_id=request_id)
        body = reply.body.encode()
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # an unparseable request line: still answer with a status line
        try:
            self.send_response(error.status, message)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass  # the client is gone: nothing more to say


def build_server(host: str, port: int, *, max_request_bytes: int, timeout_sec: float) -> BaseWSGIServer:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # our own structured access log replaces it
    gateway = LocalGateway(max_request_bytes=max_request_bytes + _FORM_OVERHEAD, timeout_sec=timeout_sec)
    server = make_server(
        host, port, with_web_pages(make_wsgi_app(gateway)), threaded=True, request_handler=EnvelopeRequestHandler
    )
    # Graceful shutdown: server_close() waits for requests in flight instead of killing their threads.
    server.daemon_threads = False  # type: ignore[attr-defined]
    server.block_on_close = True  # type: ignore[attr-defined]
    return server
