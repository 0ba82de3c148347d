"""Fake upstream providers: real HTTP servers on 127.0.0.1 that speak each provider's wire format.

``FakeOpenAI`` answers ``/v1/audio/transcriptions``, ``/v1/audio/translations`` (multipart, ``json`` and
``verbose_json``) and ``/v1/chat/completions`` (``input_audio`` parts); ``FakeGemini`` answers
``/v1beta/models/{model}:generateContent`` (``inline_data`` parts, ``x-goog-api-key``). Both record every request
(path, headers, parsed body, the audio bytes that arrived) and fail on demand: queue faults with ``fail_next``
and each following request takes the next one (latency, an error status with ``Retry-After``, malformed JSON, a
hang, a dropped connection), then they answer normally again.

Use them as context managers (``with FakeGemini() as upstream: ...``) or from a pytest fixture.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Literal, Self
from urllib.parse import parse_qs, urlsplit

from requests_toolbelt.multipart.decoder import MultipartDecoder

FaultKind = Literal["latency", "status", "malformed_json", "hang", "drop"]


@dataclass(frozen=True)
class Fault:
    """What one request suffers instead of (or before) its normal answer. Build with the helpers below."""

    kind: FaultKind
    seconds: float = 0.0
    status: int = 0
    retry_after: str | None = None
    message: str = ""


def latency(seconds: float) -> Fault:
    """Answer normally, ``seconds`` late."""
    return Fault("latency", seconds=seconds)


def error(status: int, *, retry_after: str | float | None = None, message: str = "") -> Fault:
    """Answer ``status`` with the provider's error body, and a ``Retry-After`` header when given."""
    header = None if retry_after is None else str(retry_after)
    return Fault("status", status=status, retry_after=header, message=message or f"fake upstream error {status}")


def rate_limited(retry_after: str | float) -> Fault:
    """429 with ``Retry-After`` (seconds, or an HTTP date string)."""
    return error(429, retry_after=retry_after, message="Rate limit reached; slow down")


def malformed_json() -> Fault:
    """200 with ``Content-Type: application/json`` and a body cut off mid-object."""
    return Fault("malformed_json")


def hang(seconds: float = 30.0) -> Fault:
    """Read the request, then say nothing for ``seconds`` (or until the server stops) and close."""
    return Fault("hang", seconds=seconds)


def drop() -> Fault:
    """Read the request, then close the socket without a response."""
    return Fault("drop")


@dataclass
class RecordedRequest:
    """One request as the fake saw it. ``audio`` and ``audio_format`` are filled by the wire format that carried
    them: the multipart file and its file name (transcriptions), ``input_audio.format`` (chat), or
    ``inline_data.mime_type`` (Gemini)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    form: dict[str, list[str]] = field(default_factory=dict)
    filename: str | None = None
    audio: bytes | None = None
    audio_format: str | None = None
    model: str | None = None

    def field(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class FakeUpstream:
    """A threaded HTTP/1.1 server on a random loopback port; subclasses speak one provider's format."""

    api_prefix: ClassVar[str] = ""

    def __init__(self, *, api_key: str = "test-upstream-key", port: int = 0) -> None:
        self.api_key = api_key
        self.port = port  # 0: any free port (tests); a fixed one for a fake started by hand
        self.requests: list[RecordedRequest] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> Self:
        handler = type("Handler", (_Handler,), {"upstream": self})
        server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        """The base URL an engine is configured with (``.../v1`` or ``.../v1beta``)."""
        return self.origin + self.api_prefix

    # -- faults ----------------------------------------------------------------------------------------------
    def fail_next(self, *faults: Fault) -> None:
        """Queue ``faults``: the next request takes the first, the one after the second, and so on."""
        with self._lock:
            self._faults.extend(faults)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    # -- the provider's wire format (subclasses) -------------------------------------------------------------
    def parse(self, request: RecordedRequest) -> None:
        """Fill ``json``/``form``/``audio``/``model`` from the body."""

    def authorized(self, request: RecordedRequest) -> bool:
        raise NotImplementedError

    def unauthorized(self, request: RecordedRequest) -> Reply:
        raise NotImplementedError

    def answer(self, request: RecordedRequest) -> Reply:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> bytes:
        raise NotImplementedError

    # -- what the handler calls ------------------------------------------------------------------------------
    def handle(self, handler: _Handler, request: RecordedRequest) -> None:
        try:
            self.parse(request)
        except (ValueError, KeyError, TypeError) as exc:
            self._record(request)
            handler.reply(Reply(400, self.error_body(400, f"unparseable request: {exc}")))
            return
        self._record(request)
        fault = self._next_fault()
        if fault is not None:
            if fault.kind == "latency":
                self._stopping.wait(fault.seconds)
            elif fault.kind == "status":
                headers = {"retry-after": fault.retry_after} if fault.retry_after is not None else {}
                handler.reply(Reply(fault.status, self.error_body(fault.status, fault.message), headers))
                return
            elif fault.kind == "malformed_json":
                handler.reply(Reply(200, b'{"text": "an answer cut off in the midd'))
                return
            elif fault.kind == "hang":
                self._stopping.wait(fault.seconds)
                handler.drop()
                return
            elif fault.kind == "drop":
                handler.drop()
                return
        if not self.authorized(request):
            handler.reply(self.unauthorized(request))
            return
        handler.reply(self.answer(request))


class _Handler(BaseHTTPRequestHandler):
    upstream: ClassVar[FakeUpstream]
    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse pooled connections as they do in production

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            method="POST",
            path=parts.path,
            query=parse_qs(parts.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        self.upstream.handle(self, request)

    def reply(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:  # the client gave up (its deadline passed)
            self.close_connection = True

    def drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client may already be gone
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# -- OpenAI ------------------------------------------------------------------------------------------------------


class FakeOpenAI(FakeUpstream):
    """OpenAI's audio transcription/translation endpoints and chat completions with ``input_audio``.

    Attributes
    ----------
    segments
        What the transcription endpoints "hear": ``(start, end, text)``; ``verbose_json`` reports them, and words
        spread evenly over each segment when ``timestamp_granularities[]`` asks for words.
    language
        The language name ``verbose_json`` reports (Whisper reports names, not codes).
    reply_text, finish_reason, usage
        The chat completion's answer.
    """

    api_prefix = "/v1"

    def __init__(self, *, api_key: str = "sk-test-openai-0123456789", port: int = 0) -> None:
        super().__init__(api_key=api_key, port=port)
        self.segments: list[tuple[float, float, str]] = [(0.0, 1.2, " Hello there."), (1.2, 2.5, " How are you?")]
        self.language = "english"
        self.reply_text = "A steady 440 Hz tone."
        self.finish_reason = "stop"
        self.usage = (120, 8)

    def catalog_entry(
        self,
        *,
        price_micro_usd_per_minute: int = 900,
        alias: str | None = "transcribe",
        credential_env: str = "FAKE_OPENAI_KEY",
        deployed_credential: str | None = None,
    ) -> str:
        """A catalog's ``whisper-fake`` transcription model on this fake (its key read from ``credential_env``
        locally, and from ``deployed_credential``, an ``ssm:``/``secret:`` reference, under the aws runtime)."""
        aliases = f'aliases = ["{alias}"]\n' if alias else ""
        references = [f"env:{credential_env}", *([deployed_credential] if deployed_credential else [])]
        return (
            f'[[models]]\nsku = "whisper-fake"\nkind = "transcription"\nprovider = "openai-transcription"\n'
            f'upstream_model = "whisper-1"\nbase_url = "{self.url}"\ncredentials = {json.dumps(references)}\n'
            f"price_micro_usd_per_minute = {price_micro_usd_per_minute}\n{aliases}"
        )

    def parse(self, request: RecordedRequest) -> None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            for part in MultipartDecoder(request.body, content_type).parts:
                disposition = part.headers.get(b"Content-Disposition", b"").decode()
                name = _param(disposition, "name")
                filename = _param(disposition, "filename")
                if filename is not None:
                    request.filename = filename
                    request.audio = part.content
                    request.audio_format = filename.rsplit(".", 1)[-1]
                elif name is not None:
                    request.form.setdefault(name, []).append(part.content.decode())
            request.model = request.field("model")
        elif request.body:
            request.json = json.loads(request.body)
            request.model = request.json.get("model")
            for message in request.json.get("messages", []):
                content = message.get("content")
                for item in content if isinstance(content, list) else []:
                    if item.get("type") == "input_audio":
                        request.audio = base64.b64decode(item["input_audio"]["data"], validate=True)
                        request.audio_format = item["input_audio"]["format"]

    def authorized(self, request: RecordedRequest) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    def unauthorized(self, request: RecordedRequest) -> Reply:
        # OpenAI quotes (part of) the key it was given; the fake quotes all of it, to prove callers redact it.
        presented = request.headers.get("authorization", "").removeprefix("Bearer ")
        return Reply(401, self.error_body(401, f"Incorrect API key provided: {presented}."))

    def error_body(self, status: int, message: str) -> bytes:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}}).encode()

    def answer(self, request: RecordedRequest) -> Reply:
        if request.path in ("/v1/audio/transcriptions", "/v1/audio/translations"):
            return self._transcription(request, translate=request.path.endswith("translations"))
        if request.path == "/v1/chat/completions":
            return self._chat(request)
        return Reply(404, self.error_body(404, f"Invalid URL (POST {request.path})"))

    def _transcription(self, request: RecordedRequest, *, translate: bool) -> Reply:
        if request.audio is None or request.model is None:
            return Reply(400, self.error_body(400, "file and model are required"))
        text = "".join(segment[2] for segment in self.segments).strip()
        if request.field("response_format") != "verbose_json":
            return Reply(200, json.dumps({"text": text}).encode())
        granularities = request.form.get("timestamp_granularities[]", ["segment"])
        payload: dict[str, Any] = {
            "task": "translate" if translate else "transcribe",
            "language": "english" if translate else self.language,
            "duration": self.segments[-1][1] if self.segments else 0.0,
            "text": text,
            "segments": [
                {
                    "id": index,
                    "seek": 0,
                    "start": start,
                    "end": end,
                    "text": seg_text,
                    "tokens": [50364],
                    "temperature": 0.0,
                    "avg_logprob": -0.25,
                    "compression_ratio": 1.1,
                    "no_speech_prob": 0.01,
                }
                for index, (start, end, seg_text) in enumerate(self.segments)
            ],
        }
        if "word" in granularities:
            payload["words"] = [word for segment in self.segments for word in _spread_words(*segment)]
        return Reply(200, json.dumps(payload).encode())

    def _chat(self, request: RecordedRequest) -> Reply:
        if request.audio is None:
            return Reply(400, self.error_body(400, "this fake expects an input_audio part"))
        if request.audio_format not in ("wav", "mp3"):
            return Reply(400, self.error_body(400, f"Unsupported audio format: {request.audio_format}"))
        prompt_tokens, completion_tokens = self.usage
        payload = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.reply_text, "refusal": None},
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return Reply(200, json.dumps(payload).encode())


# -- Gemini ------------------------------------------------------------------------------------------------------

_GENERATE_PATH = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):generateContent$")
_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
                  500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}  # fmt: skip
GEMINI_AUDIO_MIME_TYPES = frozenset({"audio/wav", "audio/mp3", "audio/aiff", "audio/aac", "audio/ogg", "audio/flac"})
GEMINI_INLINE_LIMIT = 20 * 1024 * 1024


class FakeGemini(FakeUpstream):
    """Gemini's ``generateContent`` with inline audio.

    Refuses, as Gemini does, audio MIME types it does not document and requests over the 20 MB inline limit.

    Attributes
    ----------
    reply_text, finish_reason, usage
        The candidate's text, ``finishReason``, and ``(promptTokenCount, candidatesTokenCount,
        thoughtsTokenCount)``.
    """

    api_prefix = "/v1beta"

    def __init__(self, *, api_key: str = "AIza-test-gemini-0123456789", port: int = 0) -> None:
        super().__init__(api_key=api_key, port=port)
        self.reply_text = "A steady 440 Hz tone."
        self.finish_reason = "STOP"
        self.usage = (250, 12, 30)

    def parse(self, request: RecordedRequest) -> None:
        match = _GENERATE_PATH.match(request.path)
        request.model = match.group("model") if match else None
        if not request.body:
            return
        request.json = json.loads(request.body)
        for content in request.json.get("contents", []):
            for part in content.get("parts", []):
                inline = part.get("inline_data") or part.get("inlineData")
                if inline is not None:
                    request.audio = base64.b64decode(inline["data"], validate=True)
                    request.audio_format = inline.get("mime_type") or inline.get("mimeType")

    def authorized(self, request: RecordedRequest) -> bool:
        return request.headers.get("x-goog-api-key") == self.api_key

    def unauthorized(self, request: RecordedRequest) -> Reply:
        presented = request.headers.get("x-goog-api-key", "")
        return Reply(400, self.error_body(400, f"API key not valid. Please pass a valid API key. ({presented})"))

    def error_body(self, status: int, message: str) -> bytes:
        status_name = _GOOGLE_STATUS.get(status, "UNKNOWN")
        return json.dumps({"error": {"code": status, "message": message, "status": status_name}}).encode()

    def answer(self, request: RecordedRequest) -> Reply:
        if request.model is None:
            return Reply(404, self.error_body(404, f"unknown path {request.path}"))
        if len(request.body) > GEMINI_INLINE_LIMIT:
            return Reply(400, self.error_body(400, "Request payload size exceeds the limit: 20971520 bytes."))
        if request.audio is None:
            return Reply(400, self.error_body(400, "this fake expects an inline_data audio part"))
        if request.audio_format not in GEMINI_AUDIO_MIME_TYPES:
            return Reply(400, self.error_body(400, f"Unsupported MIME type: {request.audio_format}"))
        prompt_tokens, candidate_tokens, thought_tokens = self.usage
        payload = {
            "candidates": [
                {
                    "content": {
                        "parts": [{"text": "Let me listen first.", "thought": True}, {"text": self.reply_text}],
                        "role": "model",
                    },
                    "finishReason": self.finish_reason,
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": candidate_tokens,
                "thoughtsTokenCount": thought_tokens,
                "totalTokenCount": prompt_tokens + candidate_tokens + thought_tokens,
            },
            "modelVersion": request.model,
        }
        return Reply(200, json.dumps(payload).encode())


def _param(header: str, name: str) -> str | None:
    found = re.search(rf'(?:^|;)\s*{name}="([^"]*)"', header)
    return found.group(1) if found else None


def _spread_words(start: float, end: float, text: str) -> list[dict[str, Any]]:
    words = text.split()
    step = (end - start) / max(1, len(words))
    return [
        {"word": word, "start": round(start + i * step, 3), "end": round(start + (i + 1) * step, 3)}
        for i, word in enumerate(words)
    ]
