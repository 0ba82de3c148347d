"""The local API: a waitress server playing API Gateway in front of the real handlers.

Each request becomes an HTTP API v2 event; protected routes first go through
``functions/authorizer`` (as the gateway's Lambda authorizer), whose context is attached to the
event; then the route's function handler runs in-process and its response is written back.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import hashlib
import io
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlsplit

import pybase64
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.receiver import FixedStreamReceiver
from waitress.server import create_server
from waitress.task import ErrorTask, WSGITask
from waitress.utilities import BadRequest as WaitressBadRequest
from waitress.utilities import Error as WaitressError
from waitress.utilities import RequestHeaderFieldsTooLarge
from werkzeug.exceptions import HTTPException
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
    RequestTimeoutError,
)
from earshot.http.contracts import ContractName, render_error
from earshot.http.multipart import is_multipart
from earshot.http.streaming import StreamBody
from earshot.limits import MAX_UPLOAD_BYTES
from earshot.local.body_pipe import BodyPipe
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
# What a presigned upload's form may add around the file part its URL was signed for (boundaries, part heads and
# a few small fields): the body is refused once past the signed size plus this, however it is framed.
_UPLOAD_FORM_OVERHEAD = 64 * 1024
# Bodies are read in pieces of this size, so an oversized or endless (chunked) body stops at the limit.
_READ_CHUNK = 1024 * 1024
# After closing a connection with an answer, read (and drop) what the client still sends for this long at most
# (lingering close), so that it reads the answer instead of a reset.
_LINGER_SEC = 1.0
_LINGER_BYTES = 4 * 1024 * 1024


def over_signed_size(max_bytes: int) -> FileTooLargeError:
    """The refusal of an upload body past what its presigned URL was signed for (S3's EntityTooLarge)."""
    return FileTooLargeError(
        f"the upload is larger than the {max_bytes} bytes its URL was signed for (the 'bytes' declared to "
        "POST /v1/uploads); ask POST /v1/uploads for a new URL with the file's real size",
        param="file",
    )


def _stalled(idle_sec: float) -> EarshotError:
    return RequestTimeoutError(f"the request body stopped arriving (nothing for {idle_sec:g} s); send it again")


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
        self,
        *,
        method: str,
        path: str,
        raw_query: str,
        headers: dict[str, str],
        body: bytes,
        body_reader: RequestBody | None = None,
    ) -> GatewayResponse:
        """Route, authorize and invoke. ``body_reader`` (a multipart body still on the socket) is handed to the
        function beside the event instead of base64 inside it; everything else in the event is API Gateway's."""
        if path.startswith(LOCAL_UPLOAD_PREFIX) and method.upper() == "POST":
            reader = body_reader or RequestBody(io.BytesIO(body), len(body), len(body))
            return self._local_upload(path.removeprefix(LOCAL_UPLOAD_PREFIX), headers, reader)
        matched = self.match(method, path)
        if matched is None:
            return self._error(*self._unrouted(method, path))
        route, path_params = matched
        limit = max(self.max_request_bytes, route.max_body_bytes or 0)
        if body_reader is None and (rejected := self.too_large(len(body), route.errors, limit)):
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
            context = LocalContext(route.function, self.timeout_sec, response_streaming=True, request_body=body_reader)
            result = load_handler(route.function)(event, context)
        except Exception:  # a handler that raises is a 502 from API Gateway; here, our envelope
            logger.exception("handler raised", extra={"function": route.function})
            return self._error(InternalError("internal error; it has been logged"), request_id, route.errors)
        return self._response(result)

    @staticmethod
    def upload_policy(token: str) -> int:
        """The file size the presigned upload URL ``token`` was signed for; ``EarshotError`` if it is not valid here."""
        from earshot.runtime import get_runtime

        verify = getattr(get_runtime().blobs, "verify_upload_token", None)
        if verify is None:
            raise NotFoundError("local uploads are served only by the local file blob store")
        _key, max_bytes = verify(token)
        return int(max_bytes)

    def _local_upload(self, token: str, headers: dict[str, str], body: RequestBody) -> GatewayResponse:
        """What S3 does with a presigned POST locally: check the signed policy, store, emit ObjectCreated.

        The file part is streamed from the request body straight into a file beside its blob (hashed on the way),
        refused as soon as it passes the policy's size, and renamed into place when whole: a 500 MB upload never
        sits in memory."""
        from earshot.http.multipart import parse_multipart_stream
        from earshot.runtime import get_runtime

        request_id = f"upload-{time.time_ns():x}"
        staged: list[_HashingFile] = []
        try:
            blobs = get_runtime().blobs
            verify = getattr(blobs, "verify_upload_token", None)
            staging_file, adopt = getattr(blobs, "staging_file", None), getattr(blobs, "adopt", None)
            if verify is None or staging_file is None or adopt is None:
                raise NotFoundError("local uploads are served only by the local file blob store")
            key, max_bytes = verify(token)
            content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")

            def spool(_name: str, _filename: str) -> _HashingFile:
                staged.append(_HashingFile(staging_file(key)))
                return staged[-1]

            def over_policy(size: int) -> EarshotError | None:
                return over_signed_size(max_bytes) if size > max_bytes else None

            upload = parse_multipart_stream(body.read, content_type, file_limit=over_policy, spool=spool).files.get(
                "file"
            )
            if upload is None or upload.spooled is None:
                raise InvalidRequestError("the form has no 'file' field", param="file")
            if upload.size < 1:
                raise FileTooLargeError(f"the upload must be 1 to {max_bytes} bytes, as declared", param="file")
            spooled = staged[-1]
            spooled.close()
            adopt(key, spooled.path)
            staged.clear()
            event = {
                "Records": [
                    {
                        "eventSource": "aws:s3",
                        "eventName": "ObjectCreated:Post",
                        "s3": {
                            "bucket": {"name": "local"},
                            "object": {"key": quote_plus(key), "versionId": spooled.digest()[:16]},
                        },
                    }
                ]
            }
            load_handler("ingest")(event, LocalContext("ingest", 30.0))
        except EarshotError as error:
            return self._error(error, request_id)
        finally:
            for leftover in staged:  # refused or failed: nothing half-written stays beside the blobs
                leftover.close()
                leftover.path.unlink(missing_ok=True)
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


class _HashingFile(io.RawIOBase):
    """A staged upload: what is written goes to ``path`` and into a SHA-256 (the blob's version id)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._file = path.open("wb")
        self._hash = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any, /) -> int:
        self._hash.update(data)
        return self._file.write(data)

    def close(self) -> None:
        self._file.close()
        super().close()

    def digest(self) -> str:
        return self._hash.hexdigest()


class _BodyError(Exception):
    """The request body could not be read as HTTP says it is framed."""

    def __init__(self, error: EarshotError) -> None:
        super().__init__(error.message)
        self.error = error


_INCOMPLETE_BODY = "the request body is incomplete or its chunked framing is malformed"


class RequestBody:
    """A request body read from the socket in pieces by the function itself (``ApiRequest.body_stream``): the
    upload is copied once, into its form part, instead of read whole, base64-encoded into the event and decoded.
    Past ``limit`` (a chunked body) or short of its Content-Length, a read raises the envelope's error."""

    def __init__(self, stream: Any, length: int | None, limit: int) -> None:
        self.length = length
        # Files the function streamed upload parts into (earshot.http.forms): deleted once the answer is sent.
        self.staged: list[Path] = []
        self._stream = stream
        self._limit = limit
        self._taken = 0
        self._ended = False

    def read(self, size: int, /) -> bytes:
        piece = bytearray(self._room(size))
        got = self.readinto(memoryview(piece))
        return bytes(piece[:got]) if got < len(piece) else bytes(piece)

    def readinto(self, into: memoryview, /) -> int:
        """Read into ``into`` in place (the multipart parser's reused window): no new string per piece."""
        size = self._room(len(into))
        if size <= 0:
            return 0
        try:
            readinto = getattr(self._stream, "readinto", None)
            if readinto is not None:
                got = int(readinto(into[:size]) or 0)
            else:
                piece: bytes = self._stream.read(size)
                got = len(piece)
                into[:got] = piece
        except (OSError, ValueError, HTTPException) as exc:
            raise InvalidRequestError(_INCOMPLETE_BODY) from exc
        if not got:
            if self.length is not None:
                raise InvalidRequestError(_INCOMPLETE_BODY)  # the client closed before Content-Length bytes
            self._ended = True
            return 0
        self._taken += got
        if self._taken > self._limit:
            raise too_large(self._taken, self._limit - _FORM_OVERHEAD)
        return got

    def discard_staged(self) -> None:
        for path in self.staged:
            path.unlink(missing_ok=True)

    def _room(self, size: int) -> int:
        if self.length is not None:
            size = min(size, self.length - self._taken)
        return 0 if self._ended else max(0, size)


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
        raise _BodyError(InvalidRequestError(_INCOMPLETE_BODY)) from exc
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def make_wsgi_app(gateway: LocalGateway) -> Any:
    def application(environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        started = time.perf_counter()
        uploading = request.path.startswith(LOCAL_UPLOAD_PREFIX)  # capped by its signed policy instead
        contract, limit = gateway.route_limits(request.method, request.path)
        rejected = None if uploading else gateway.too_large(request.content_length, contract, limit)
        body, reader = b"", None
        # A body still arriving (see _Channel): read from the pipe the event loop feeds, as it comes.
        pipe = environ["wsgi.input"] if isinstance(environ.get("wsgi.input"), BodyPipe) else None
        source = pipe if pipe is not None else request.stream
        if rejected is None and uploading:  # streamed to disk under its signed policy's size (see _local_upload)
            reader = RequestBody(source, request.content_length, MAX_UPLOAD_BYTES + _FORM_OVERHEAD)
        elif rejected is None and is_multipart(request.content_type or ""):
            reader = RequestBody(source, request.content_length, limit)  # read by the function itself
        elif rejected is None:
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
                body_reader=reader,
            )
        if pipe is not None:
            # A form ends at its closing boundary: read what may follow it (its epilogue) so that the connection
            # can serve the next request. A body the function stopped reading early (a refusal) is not waited for:
            # the answer goes out and the connection closes (see _CasePreservingTask).
            pipe.drain(max_bytes=_DRAIN_BYTES, timeout_sec=_DRAIN_SEC)
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
        if reader is not None and reader.staged:  # after the last byte (a streamed answer still reads the file)
            response.call_on_close(reader.discard_staged)
        return response(environ, start_response)

    return application


_PROTOCOL_ERRORS: dict[int, type[EarshotError]] = {414: RequestTargetTooLongError, 431: HeadersTooLargeError}
# What the server reads of a request's head, as http.server and werkzeug did: a 64 kB line, 100 header lines.
_MAX_LINE = 65536
_MAX_HEADERS = 100
# Worker threads: requests served at once. A held-open event stream (GET /v1/tasks/{id}/events) keeps one.
SERVER_THREADS = 32
# An idle keep-alive connection is closed after this (longer than a reverse proxy's own idle timeout: nginx 60 s,
# ALB 60 s, so the proxy, not us, closes first and never reuses a connection we are closing).
_KEEPALIVE_IDLE_SEC = 120
_RECV_BYTES = 256 * 1024
# A request body of known length is received into this one buffer (the event loop is the only thread reading
# sockets, and waitress copies each piece into the request's own buffer before the next read): no allocation per
# read, where ``recv`` allocated (and the kernel faulted in) a fresh 256 kB string each time.
_BODY_RECV_BYTES = 1024 * 1024
# A multipart body of at least this size (or chunked) goes to a worker at the end of its head and is parsed as it
# arrives; a smaller one is received whole first (one recv or two: a pipe would only add hand-offs).
_STREAM_FROM_BYTES = 256 * 1024
# What a streamed body may hold in memory ahead of the worker reading it; past it, the socket is left unread.
_PIPE_BYTES = 2 * 1024 * 1024
# A streamed body's client that sends nothing for this long gets a 408 (the worker it holds is released).
_BODY_IDLE_SEC = 30.0
# After the function answers, what of a streamed body's rest is read (and dropped) to keep the connection.
_DRAIN_BYTES = 1024 * 1024
_DRAIN_SEC = 0.5
# On SIGTERM, requests in flight get this long to finish (docker stop waits 10 s by default, systemd 90 s).
SHUTDOWN_GRACE_SEC = 30.0


class _TargetTooLong(WaitressError):  # type: ignore[misc]
    code = 414
    reason = "URI Too Long"


class _Refused(WaitressError):  # type: ignore[misc]
    """A request refused from its head alone, with the envelope's error."""

    def __init__(self, error: EarshotError) -> None:
        super().__init__(error.message)
        self.error = error
        self.code = error.status
        self.reason = HTTPStatus(error.status).phrase


class _EnvelopeErrorTask(ErrorTask):  # type: ignore[misc]
    """waitress's answer to a request it could not parse (or whose body passed the route's limit), in the envelope."""

    def execute(self) -> None:
        failure = self.request.error
        code = int(getattr(failure, "code", 400))
        contract: ContractName = getattr(self.request, "contract", "openai")
        error: EarshotError
        signed_bytes = getattr(self.request, "signed_bytes", None)
        if isinstance(failure, _Refused):
            error = failure.error
        elif code == 413 and signed_bytes is not None:
            error = over_signed_size(signed_bytes)
        elif code == 413:
            limit = int(getattr(self.request, "limit", 0))
            size = max(int(self.request.content_length or 0), int(self.request.body_bytes_received or 0))
            error = too_large(max(size, limit + 1), limit - _FORM_OVERHEAD)
        elif code >= 500 and code != 501:
            error, contract = InternalError("internal error; it has been logged"), "openai"
        else:  # everything else the client got wrong: 400, or the 414/431 of an oversized head
            error = _PROTOCOL_ERRORS.get(code, InvalidRequestError)(
                f"malformed HTTP request: {getattr(failure, 'body', '') or 'unreadable'}"
            )
        reply = render_error(error, request_id=_gateway_request_id(), contract=contract)
        body = reply.body.encode()
        self.status = f"{reply.status} {getattr(failure, 'reason', 'Bad Request')}"
        self.response_headers.extend(reply.headers.items())
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _CasePreservingTask(WSGITask):  # type: ignore[misc]
    """waitress title-cases response header names (``X-Earshot-Cost-Usd``); API Gateway, like werkzeug before,
    sends them as the function wrote them (``X-Earshot-Cost-USD``), and so does this."""

    def build_response_header(self) -> bytes:
        pipe: BodyPipe | None = getattr(self.request, "pipe", None)
        if pipe is not None and not pipe.ended:
            # The function answered before the body ended (a refusal): the rest is dropped with the connection.
            self.set_close_on_finish()
        written = {"-".join(part.capitalize() for part in name.split("-")): name for name, _ in self.response_headers}
        lines = bytes(super().build_response_header()).split(b"\r\n")
        for index in range(1, len(lines)):
            name, colon, rest = lines[index].partition(b":")
            original = written.get(name.decode("latin-1")) if colon else None
            if original is not None:
                lines[index] = original.encode("latin-1") + b":" + rest
        return b"\r\n".join(lines)


def _parser_class(gateway: LocalGateway) -> type[HTTPRequestParser]:
    class _Parser(HTTPRequestParser):  # type: ignore[misc]
        """waitress's parser, with the head limits above and each route's own body limit, checked as soon as the
        head is read (a Content-Length over it, or a chunked body growing past it, is refused without buffering)."""

        adj: Any  # waitress is untyped: what this class reads of it
        error: Any
        contract: ContractName = "openai"
        limit = 0
        signed_bytes: int | None = None  # a presigned upload's signed file size (its body's cap)
        pipe: BodyPipe | None = None  # the body, handed to a worker as it arrives (see _Channel)
        dispatched = False  # the worker has it (since the end of the head)

        def parse_header(self, header_plus: bytes) -> None:
            try:
                super().parse_header(header_plus)
            except Exception:
                # A head waitress refuses (an invalid Content-Length, say) still answers in its route's contract;
                # so does one refused before waitress read its request line (an invalid header line, a lower-case
                # method, a target with a space): its second word names the route when it is a path.
                path, command = getattr(self, "path", None), getattr(self, "command", None)
                if not isinstance(path, str):
                    words = header_plus.split(b"\n", 1)[0].split()
                    if len(words) >= 2 and words[1].startswith(b"/"):
                        path = urlsplit(words[1].decode("latin-1")).path
                        command = words[0].decode("latin-1").upper()
                if isinstance(path, str) and not path.startswith(LOCAL_UPLOAD_PREFIX):
                    self.contract = gateway.route_limits(str(command or "GET"), path)[0]
                raise
            lines = header_plus.split(b"\n")
            if len(lines[0]) > _MAX_LINE:
                self.error = _TargetTooLong(f"the request target is over {_MAX_LINE} bytes")
            elif len(lines) - 1 > _MAX_HEADERS or any(len(line) > _MAX_LINE for line in lines[1:]):
                self.error = RequestHeaderFieldsTooLarge(f"over {_MAX_HEADERS} header lines or a line over 64 kB")
            if self.path.startswith(LOCAL_UPLOAD_PREFIX):
                # A presigned upload's body is capped by the size its URL was signed for, checked here so that a
                # Content-Length over it is refused unread and a chunked body is refused once it passes it.
                self.limit = MAX_UPLOAD_BYTES + _FORM_OVERHEAD
                if self.command == "POST" and self.error is None:
                    try:
                        self.signed_bytes = gateway.upload_policy(self.path.removeprefix(LOCAL_UPLOAD_PREFIX))
                        self.limit = min(self.limit, self.signed_bytes + _UPLOAD_FORM_OVERHEAD)
                    except EarshotError as refused:  # a forged or expired URL: answered before its body is read
                        self.error = _Refused(refused)
            else:
                self.contract, self.limit = gateway.route_limits(self.command, self.path)
            adjusted = copy.copy(self.adj)
            adjusted.max_request_body_size = self.limit + 1  # waitress refuses at >= this
            self.adj = adjusted
            if self.error is not None:
                self.completed = True
            elif self._streams():
                self.pipe = BodyPipe(capacity=_PIPE_BYTES, idle_sec=_BODY_IDLE_SEC, wake=self.wake, on_idle=_stalled)
                self.body_rcv.buf = self.pipe  # the receiver appends what arrives to the pipe, not a temp file
                self.chunked = False  # the head stays as it was read (a worker is reading it)

        def wake(self) -> None:  # replaced by the channel with its server's trigger
            pass

        def _streams(self) -> bool:
            """Whether this request's body goes to a worker as it arrives: a multipart POST to a route (or a
            presigned upload) whose body is chunked or large enough for the overlap to pay."""
            if self.body_rcv is None or self.command != "POST":
                return False
            if not self.chunked and self.content_length < _STREAM_FROM_BYTES:
                return False
            if self.path.startswith(LOCAL_UPLOAD_PREFIX):
                return True
            content_type = self.headers.get("CONTENT_TYPE", "")
            return is_multipart(content_type) and gateway.match(self.command, self.path) is not None

        def body_failure(self) -> EarshotError:
            """The error a worker reading this body gets when waitress refuses the rest of it."""
            code = int(getattr(self.error, "code", 400))
            if code == 413 and self.signed_bytes is not None:
                return over_signed_size(self.signed_bytes)
            if code == 413:
                return too_large(max(self.body_bytes_received, self.limit + 1), self.limit - _FORM_OVERHEAD)
            return InvalidRequestError(_INCOMPLETE_BODY)

    return _Parser


class _Channel(HTTPChannel):  # type: ignore[misc]
    """waitress's connection, made to behave as clients and proxies expect at the edges:

    * a client that half-closes after its request (or mid-body) still gets its answer (waitress drops it);
    * when the server closes a connection (an error, ``Connection: close``, a refused body), it stops writing,
      then reads and drops what the client still sends for a moment (lingering close), so the client reads the
      answer instead of a reset.
    """

    request: Any  # waitress is untyped: what this class reads of it
    will_close: bool
    sent_continue: bool
    error_task_class = _EnvelopeErrorTask
    task_class = _CasePreservingTask
    _peer_done = False  # the client sent FIN: answer what it asked, then close
    _drop_input = False  # a streamed body failed mid-way: nothing more on this connection is a request
    _linger_until = 0.0
    _linger_left = _LINGER_BYTES

    def readable(self) -> bool:
        if self._linger_until:
            return True
        if self._peer_done:
            return False
        pending = self.request
        if pending is not None and pending.dispatched:
            # A body a worker reads as it arrives: read on while its pipe has room (waitress would wait for the
            # worker to finish first, as it does for a pipelined request).
            return not (self.will_close or self.close_when_flushed) and bool(pending.pipe.has_room())
        return bool(super().readable())

    def received(self, data: bytes | memoryview) -> bool:
        """waitress's ``received``, except that a request whose body streams (its parser made a pipe) goes to a
        worker at the end of its head, and the rest of its body is fed to that pipe as it arrives."""
        if not data:
            return False
        with self.requests_lock:
            if self.will_close or self.close_when_flushed:
                return False
            while data:
                if self.request is None:
                    self.request = self.parser_class(self.adj)
                    self.request.wake = self.server.pull_trigger
                pending = self.request
                consumed = pending.received(data)
                if (
                    pending.expect_continue
                    and pending.headers_finished
                    and not self.requests
                    and not self.sent_continue
                ):
                    self.send_continue()
                if pending.pipe is not None and pending.headers_finished and not pending.dispatched:
                    pending.dispatched = True
                    self.requests.append(pending)
                    if len(self.requests) == 1:
                        self.server.add_task(self)
                if pending.completed:
                    self.sent_continue = False
                    if pending.dispatched:
                        if pending.error is not None:
                            pending.pipe.fail(pending.body_failure())
                            self.request = None
                            self._drop_input = True  # the connection ends with the worker's answer
                            return True
                        pending.pipe.finish()
                    elif not pending.empty:
                        self.requests.append(pending)
                        if len(self.requests) == 1:
                            self.server.add_task(self)
                    self.request = None
                if consumed >= len(data):
                    break
                data = data[consumed:]
        return True

    def writable(self) -> bool:
        return not self._linger_until and bool(super().writable())

    def handle_read(self) -> None:
        try:
            streamed = self._recv_into_pipe()
            data = self._recv() if streamed is None else b""
        except OSError:
            self._close_now()
            return
        if streamed:
            self.last_activity = time.time()
            self._streamed(streamed)
            return
        if self._linger_until:
            self._linger_left -= len(data)
            if not data or self._linger_left <= 0 or time.monotonic() > self._linger_until:
                self._close_now()
            return
        if data:
            self.last_activity = time.time()
            if not self._drop_input:
                self.received(data)
            return
        with self.requests_lock:  # end of the client's stream
            pending = self.request
            if pending is not None and pending.dispatched:  # a worker is reading its body: it ends short
                pending.pipe.fail(InvalidRequestError(_INCOMPLETE_BODY))
                self.request = None
            elif pending is not None and not pending.completed and (pending.headers_finished or pending.header_plus):
                pending.error = WaitressBadRequest("the request ended before its body (or head) was complete")
                pending.completed = True
                self.request = None
                self.requests.append(pending)
                if len(self.requests) == 1:
                    self.server.add_task(self)
            busy = bool(self.requests)
        if busy:
            self._peer_done = True  # answer, then close (service below)
        else:
            self._close_now()

    def _recv_into_pipe(self) -> int | None:
        """A streamed body of known length is received straight into its pipe's blocks (no copy on this thread,
        which receives every upload), never past its end; the bytes received (0: the client's stream ended), or
        None when the next piece is not such a body's."""
        pending = self.request
        if (
            pending is None
            or not pending.dispatched
            or pending.completed
            or self._linger_until
            or self._drop_input
            or self.will_close
            or self.close_when_flushed
            or not isinstance(pending.body_rcv, FixedStreamReceiver)
        ):
            return None
        pipe: BodyPipe = pending.pipe
        room = pipe.reserve(max(1, pending.body_rcv.remain))
        size = 0
        try:
            size = int(self.socket.recv_into(room))
        finally:
            room.release()
            pipe.commit(size)
        return size

    def _streamed(self, size: int) -> None:
        """waitress's bookkeeping for ``size`` bytes of a streamed body received in place (``received`` for the
        rest): the body is whole once its Content-Length has arrived."""
        with self.requests_lock:
            pending = self.request
            receiver = pending.body_rcv
            receiver.remain -= size
            pending.body_bytes_received += size
            if receiver.remain <= 0:
                receiver.completed = True
                pending.completed = True
                self.sent_continue = False
                pending.pipe.finish()
                self.request = None

    def _recv(self) -> bytes | memoryview:
        """The next piece from the socket: a body of known length is read into the loop's reused buffer, never past
        its end (what follows it, a pipelined request, is read as bytes for waitress's head parser)."""
        pending = self.request
        receiver = getattr(pending, "body_rcv", None)
        if self._linger_until or self._drop_input or not isinstance(receiver, FixedStreamReceiver) or pending.completed:
            data: bytes = self.socket.recv(self.adj.recv_bytes)
            return data
        view = _loop_buffer()
        size = self.socket.recv_into(view, min(len(view), max(1, receiver.remain)))
        return view[:size]

    def service(self) -> None:
        super().service()
        if self._peer_done:
            with self.requests_lock:
                if not self.requests:
                    self.close_when_flushed = True
            self.server.pull_trigger()

    def handle_close(self) -> None:
        if self.will_close and self.connected and not self._peer_done and not self._linger_until:
            try:
                self.socket.shutdown(socket.SHUT_WR)  # the answer is complete; drop what is still coming
            except OSError:
                self._close_now()
                return
            self.will_close = False
            self._linger_until = time.monotonic() + _LINGER_SEC
            return
        self._close_now()

    def _close_now(self) -> None:
        pending = self.request
        if pending is not None and pending.dispatched:  # wake the worker reading it: this body will not end
            pending.pipe.fail(InvalidRequestError(_INCOMPLETE_BODY))
        super().handle_close()

    def idle(self) -> bool:
        return not self.requests and self.request is None and not self.total_outbufs_len

    def lingering_expired(self, now: float) -> bool:
        return bool(self._linger_until) and now > self._linger_until


_LOOP_BUFFERS = threading.local()  # one per event-loop thread (a process may run several servers, as tests do)


def _loop_buffer() -> memoryview:
    view: memoryview | None = getattr(_LOOP_BUFFERS, "view", None)
    if view is None:
        view = _LOOP_BUFFERS.view = memoryview(bytearray(_BODY_RECV_BYTES))
    return view


class LocalServer:
    """The local API on waitress: a thread pool behind an event loop, HTTP/1.1 keep-alive, and a graceful stop.

    ``serve_forever()`` runs the loop until ``shutdown()`` (or an interrupt); ``server_close()`` then stops
    listening, closes idle connections, lets requests in flight finish (up to ``grace_sec``) and flushes their
    answers, and only then closes the rest.
    """

    def __init__(self, server: Any, grace_sec: float) -> None:
        self._server = server
        self._grace_sec = grace_sec
        self._stop = threading.Event()
        self._closed = False
        self.server_port: int = int(server.effective_port)

    def serve_forever(self) -> None:
        while not self._stop.is_set():
            self._tick(1.0)

    def shutdown(self) -> None:
        self._stop.set()
        self._server.pull_trigger()

    def server_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        server = self._server
        wasyncore.dispatcher.close(server)  # stop listening: new connections are refused from here on
        deadline = time.monotonic() + self._grace_sec
        while time.monotonic() < deadline:
            channels = [c for c in list(server.active_channels.values()) if isinstance(c, _Channel)]
            for channel in channels:
                if channel.idle() and not channel._linger_until:
                    channel._close_now()  # an idle keep-alive connection: nothing to wait for
            if not any(not c.idle() for c in channels if c.connected):
                break
            self._tick(0.05)
        for channel in list(server.active_channels.values()):
            channel._close_now() if isinstance(channel, _Channel) else channel.handle_close()
        server.task_dispatcher.shutdown(timeout=1)
        server.trigger.close()

    def _tick(self, timeout: float) -> None:
        wasyncore.loop(timeout=timeout, map=self._server._map, use_poll=True, count=1)
        now = time.monotonic()
        for channel in list(self._server.active_channels.values()):
            if isinstance(channel, _Channel) and channel.lingering_expired(now):
                channel._close_now()


_M_ARENA_MAX = -8  # glibc's mallopt parameter


def bound_malloc_arenas(arenas: int = 2) -> None:
    """Let glibc keep at most ``arenas`` malloc heaps (call before the server's threads start).

    glibc gives threads that allocate at once their own heaps (up to 8 per core) and rarely returns their free
    memory; with 32 workers each holding a 20 MiB upload's buffers in turn, RSS climbed to ~850-890 MiB at
    concurrency 8 (measured, ``make bench-peer``'s load); with two heaps it stays at ~480-530 MiB, and requests
    were no slower. ``MALLOC_ARENA_MAX`` in the environment wins; other C libraries are left alone.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass


def build_server(
    host: str, port: int, *, max_request_bytes: int, timeout_sec: float, grace_sec: float = SHUTDOWN_GRACE_SEC
) -> LocalServer:
    gateway = LocalGateway(max_request_bytes=max_request_bytes + _FORM_OVERHEAD, timeout_sec=timeout_sec)
    server = create_server(
        with_web_pages(make_wsgi_app(gateway)),
        host=host,
        port=port,
        threads=SERVER_THREADS,
        ident="earshot",
        channel_timeout=_KEEPALIVE_IDLE_SEC,
        max_request_header_size=_MAX_LINE * 2 + 16 * 1024,
        max_request_body_size=MAX_UPLOAD_BYTES + _FORM_OVERHEAD,
        asyncore_use_poll=True,
        clear_untrusted_proxy_headers=True,
        # One event-loop thread reads every socket: 256 kB per read instead of 8 kB keeps a 20 MiB upload to ~80
        # loop turns (measured: 4 MiB uploads at concurrency 8 were 1.3x slower than werkzeug at 8 kB).
        recv_bytes=_RECV_BYTES,
    )
    server.channel_class = type("ServerChannel", (_Channel,), {"parser_class": _parser_class(gateway)})
    return LocalServer(server, grace_sec)
