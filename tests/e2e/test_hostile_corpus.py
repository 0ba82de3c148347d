"""One hostile corpus across every route of a real `earshot serve`: zero 5xx, every answer inside the route's
documented contract, and no balance change.

Each route gets raw HTTP requests (built byte by byte, so nothing a client library would refuse to send is
off limits): broken multipart, JSON nested 100,000 deep, odd and oversized headers, malformed HTTP, a spoofed
Host, URLs in odd schemes and to internal hosts in every URL field, oversized fields and out-of-range query
parameters. No request carries decodable audio, so none may be charged: the key's ledger must be exactly
its top-up afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from hostile_http import BAD_SCHEMES, INTERNAL, RawAnswer, malformed_http, send_raw
from local_server import LocalServer, start_server

from earshot.openapi import declared_errors
from earshot.routes import ROUTES, Route
from earshot.schemas import ErrorEnvelope, MessageError

MB = 1024 * 1024
TASK_PATH_IDS = ["task-transcription-1796168210-lrit6vku", "a" * 5000, "..%2F..%2Fetc%2Fpasswd", "%00", "%F0%9F%92%A9"]
ODD_QUERIES = [
    "limit=-1",
    "limit=1e999",
    "limit=99999999999999999999999",
    "limit=1&limit=2",
    "before=" + "x" * 100,
    "before=%00",
    "wait=nan",
    "wait=inf",
    "wait=-0.0001",
    "wait=1e308",
    "culture=xx",
    "culture=" + "e" * 5000,
    "async=maybe",
    "last_event_id=1e9",
    "last_event_id=" + "9" * 40,
    "%ZZ=%ZZ",
]
DEEP = 100_000


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    protocol: bool = False  # refused by HTTP itself: 400, 413, 414 or 431
    routed: bool = True  # names the route (a request line too garbled to read names none)


def _request(
    method: str, target: str, *, headers: dict[str, str] | None = None, body: bytes = b"", host: str = "127.0.0.1"
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _multipart(parts: list[tuple[str, bytes]], boundary: str = "B", *, close: bool = True) -> bytes:
    out = b""
    for name, value in parts:
        disposition = f'form-data; name="{name}"' + ('; filename="a.wav"' if name == "file" else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if close else b"")


def _url_fields(route: Route) -> list[str]:
    """The fields of ``route``'s body that name a URL the server would fetch or call."""
    if route.request_model is None:
        return []
    if route.path == "/v1/uploads":
        return ["process.callback_url"]
    fields = ["callback_url"] if route.processing else []
    names = route.request_model.model_fields
    if "url" in names:
        fields.append("url")
    if route.path in ("/v1/audio/understanding", "/api/v1/extract-audio"):
        fields.append("audio")
    return fields


def _with_url(route: Route, field: str, url: str) -> tuple[bytes, str]:
    """A body for ``route`` that is complete but for ``url`` in ``field`` (and carries no audio)."""
    if route.request_content_type.startswith("multipart/"):
        parts = [("question", b"what is it?")] if route.path == "/v1/audio/understand" else []
        parts.append((field, url.encode()))
        if field == "callback_url":
            parts += [("async", b"true"), ("url", b"https://example.com/a.wav")]
        return _multipart(parts), "multipart/form-data; boundary=B"
    if route.path == "/v1/uploads":
        payload = {"filename": "a.wav", "bytes": 1000, "process": {"kind": "transcription", "callback_url": url}}
    elif route.path == "/api/v1/extract-audio":
        audio = url if field == "audio" else "https://example.com/a.wav"
        payload = {"inputMethod": "url", "audio": audio, "prompt": "x"}
        if field == "callback_url":
            payload.update({"callback_url": url, "async": True})
    else:
        payload = {"audio": url if field == "audio" else "https://example.com/a.wav"}
        if field == "callback_url":
            payload["callback_url"] = url
    return json.dumps(payload).encode(), "application/json"


def cases_for(route: Route, key: str) -> Iterator[Case]:
    auth = {"Authorization": f"Bearer {key}"}
    targets = (
        [route.path.replace("{task_id}", task_id) for task_id in TASK_PATH_IDS] if "{" in route.path else [route.path]
    )
    path = targets[0]
    method = route.method
    for target in targets:
        yield Case(f"target {target[:40]}", _request(method, target, headers=auth))
    for auth_header in ("Basic Zm9vOmJhcg==", "Bearer ", "Bearer " + "x" * 8000, "Bearer sk-es-\xe9\xe9", key):
        yield Case(
            f"authorization {auth_header[:20]!r}", _request(method, path, headers={"Authorization": auth_header})
        )
    spoofed = {
        **auth,
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "gopher",
        "Forwarded": "host=evil.example",
    }
    body = json.dumps({"filename": "a.wav", "bytes": 1000}).encode() if route.path == "/v1/uploads" else b""
    yield Case(
        "host spoofing",
        _request(method, path, headers={**spoofed, "Content-Type": "application/json"}, body=body, host="evil.example"),
    )
    for query in ODD_QUERIES:
        yield Case(f"query {query[:30]}", _request(method, f"{path}?{query}", headers=auth))
    odd_headers = {
        "Idempotency-Key": "k" * 300,
        "Prefer": "respond-async, " + "x" * 5000,
        "Last-Event-ID": "9" * 40,
        "Accept": "*/*;q=foo, text/event-stream;q=" + "9" * 50,
        "Content-Type": "multipart/form-data; boundary=" + "b" * 5000,
        "Content-Encoding": "gzip",
        "Expect": "100-continue-please",
    }
    for name, value in odd_headers.items():
        yield Case(
            f"header {name}",
            _request(method, path, headers={**auth, name: value}, body=b"{}" if method == "POST" else b""),
        )
    for name, (data, _status) in malformed_http(path).items():
        unread = name == "garbage request line"
        yield Case(f"malformed HTTP: {name}", data, protocol=True, routed=not unread)
    raw_length = _request(method, path, headers=auth).replace(
        b"Connection: close", b"Connection: close\r\nContent-Length: -5"
    )
    yield Case("negative Content-Length", raw_length, protocol=True)
    if method != "POST":
        return
    # Broken multipart, whatever the route's own body.
    forms = {
        "no closing boundary": _multipart([("file", b"RIFF" + b"\x00" * 100), ("model", b"transcribe")], close=False),
        "boundary never used": b'--OTHER\r\nContent-Disposition: form-data; name="x"\r\n\r\ny\r\n--OTHER--\r\n',
        "part without a disposition": b"--B\r\nContent-Type: text/plain\r\n\r\nhello\r\n--B--\r\n",
        "ten thousand fields": _multipart([(f"f{i}", b"v") for i in range(10_000)]),
        "field name with CRLF and NUL": b'--B\r\nContent-Disposition: form-data; name="a\x00b\r\nX: y"\r\n\r\nv\r\n--B--\r\n',
        "path traversal filename": b'--B\r\nContent-Disposition: form-data; name="file"; filename="../../etc/passwd"\r\n\r\nroot\r\n--B--\r\n',
        "model field 10,000 long": _multipart([("file", b"not audio"), ("model", b"m" * 10_000)]),
        "prompt of 1 MB": _multipart([("file", b"not audio"), ("prompt", b"p" * MB), ("question", b"q" * (MB))]),
    }
    for name, body in forms.items():
        headers = {**auth, "Content-Type": "multipart/form-data; boundary=B"}
        yield Case(f"multipart: {name}", _request(method, path, headers=headers, body=body))
    # Hostile JSON, whatever the route's own body.
    documents = {
        "array nested 100,000 deep": b"[" * DEEP + b"]" * DEEP,
        "object nested 100,000 deep": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
        "schema nested 5,000 deep": json.dumps({"inputMethod": "base64", "audio": "AAAA", "prompt": "x"})[:-1].encode()
        + b', "schema": '
        + b'{"items":' * 5000
        + b"{}"
        + b"}" * 5000
        + b"}",
        "options nested deep": b'{"filename": "a.wav", "bytes": 10, "process": {"kind": "llm", "options": '
        + b'{"a":' * 5000
        + b"1"
        + b"}" * 5000
        + b"}}",
        "NaN and Infinity": b'{"prompt": NaN, "temperature": Infinity, "bytes": -Infinity}',
        "prompt of 1 MB": json.dumps({"audio": "data:audio/wav;base64,AAAA", "prompt": "p" * (MB + 1)}).encode(),
        "filename of 10,000": json.dumps({"filename": "f" * 10_000, "bytes": 10}).encode(),
        "invalid UTF-8": b'{"prompt": "\xff\xfe"}',
        "a bare string": b'"just a string"',
    }
    for name, body in documents.items():
        yield Case(
            f"json: {name}", _request(method, path, headers={**auth, "Content-Type": "application/json"}, body=body)
        )
    for field in _url_fields(route):
        for url in [*BAD_SCHEMES, *INTERNAL, "data:text/html,<script>", "https://" + "a" * 100_000 + ".example/"]:
            body, content_type = _with_url(route, field, url)
            headers = {**auth, "Content-Type": content_type}
            yield Case(f"{field}={url[:40]}", _request(method, path, headers=headers, body=body))


def _allowed(route: Route, case: Case) -> set[int]:
    allowed = {route.success_status, *declared_errors(route)}
    if route.processing:
        allowed.add(202)
    if case.protocol:
        allowed |= {400, 413, 414, 431}
    return allowed


def _check_shape(route: Route, answer: RawAnswer, case: Case) -> None:
    """An error is the route's contract's own shape (the envelope when the request named no route)."""
    assert answer.headers.get("content-type", "").startswith("application/json"), (case.name, answer.headers)
    payload = json.loads(answer.body)
    if route.errors == "extract-audio" and case.routed:
        MessageError.model_validate(payload)
        assert set(payload) == {"error"} and payload["error"], (case.name, payload)
    else:
        ErrorEnvelope.model_validate(payload)
        assert set(payload["error"]) == {"message", "type", "code", "param", "request_id"}, (case.name, payload)


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server whose rate limit the corpus does not reach (else most answers would be 429 and test nothing)."""
    running = start_server(tmp_path_factory.mktemp("hostile"), {"EARSHOT_RATE_LIMIT_PER_MINUTE": "100000"})
    yield running
    running.process.terminate()
    running.process.wait(timeout=10)


def test_hostile_corpus_across_every_route(hostile_server: LocalServer) -> None:
    server = hostile_server
    record = server.create_key_record(balance_usd="5", name="hostile")
    key = str(record["key"])
    address = urlsplit(server.url)
    host_port = (address.hostname or "127.0.0.1", address.port or 80)
    outside: list[str] = []
    statuses: dict[int, int] = {}
    sent = 0
    for route in ROUTES:
        for case in cases_for(route, key):
            answer = send_raw(host_port, case.data)
            sent += 1
            statuses[answer.status] = statuses.get(answer.status, 0) + 1
            where = f"{route.method} {route.path} [{case.name}] -> {answer.status}: {answer.body[:200]!r}"
            if answer.status >= 500 or answer.status not in _allowed(route, case):
                outside.append(where)
                continue
            if b"evil.example" in answer.body or any("evil.example" in v for v in answer.headers.values()):
                outside.append(where + " (echoes the spoofed host)")
            if answer.status >= 400:
                try:
                    _check_shape(route, answer, case)
                except (AssertionError, ValueError) as exc:
                    outside.append(f"{where} (shape: {exc})")
    assert not outside, f"{len(outside)} of {sent} answers outside the contract:\n" + "\n".join(outside[:60])
    assert sent > 500
    assert statuses.get(429, 0) == 0, statuses  # every request reached its route
    usage = httpx.get(f"{server.url}/v1/usage", headers={"Authorization": f"Bearer {key}"}).json()
    assert [entry["kind"] for entry in usage["data"]] == ["topup"]
    balance = httpx.get(f"{server.url}/v1/credits/balance", headers={"Authorization": f"Bearer {key}"}).json()
    assert balance["balance_micro_usd"] == 5_000_000
