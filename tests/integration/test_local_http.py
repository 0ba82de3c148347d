"""The local server at the HTTP level: malformed requests get the envelope and a 4xx, bodies are read bounded,
truncated forms are refused unprocessed, and links come from configuration, never from the Host header.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from audio_fixtures import audio_bytes

from earshot.config import reset_settings
from earshot.local.server import build_server
from earshot.runtime import get_runtime
from earshot.services.accounts import NewKey

MB = 1024 * 1024


@pytest.fixture
def server(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    monkeypatch.setenv("EARSHOT_PUBLIC_BASE_URL", "https://api.example.test")
    reset_settings()
    running = build_server("127.0.0.1", 0, max_request_bytes=2 * MB, timeout_sec=10)
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", running.server_port
    running.shutdown()
    running.server_close()
    reset_settings()


def _raw(address: tuple[str, int], data: bytes) -> tuple[int, dict[str, object]]:
    """Send raw bytes, half-close, and parse the status line and JSON body of the answer."""
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while piece := connection.recv(65536):
            answer += piece
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower()
    return status, json.loads(body)


MALFORMED = {
    "garbage request line": (b"GARBAGE\r\n\r\n", 400),
    "request target over 64 kB": (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "too many headers": (b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", 431),
    "header line over 64 kB": (b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-A: " + b"b" * 70_000 + b"\r\n\r\n", 431),
    "invalid chunk size": (
        b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"ZZZ\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    "body shorter than Content-Length": (
        b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nshort",
        400,
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_http_gets_the_envelope_and_a_4xx(server: tuple[str, int], case: str) -> None:
    data, expected = MALFORMED[case]
    status, payload = _raw(server, data)
    assert status == expected
    error = payload["error"]
    assert isinstance(error, dict) and error["code"] == "invalid_request" and error["request_id"]


def test_an_endless_chunked_body_is_stopped_at_the_limit(server: tuple[str, int]) -> None:
    """The server answers 413 once the limit is passed, without reading (or holding) the rest."""
    chunk = b"100000\r\n" + b"a" * 0x100000 + b"\r\n"
    started = time.monotonic()
    with socket.create_connection(server, timeout=10) as connection:
        connection.sendall(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent = 0
        try:
            for _ in range(400):  # 400 MB if nobody stopped it
                connection.sendall(chunk)
                sent += 1
        except OSError:
            pass
        answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"file_too_large"' in answer
    assert sent < 100 and time.monotonic() - started < 10


def test_upload_links_come_from_configuration_not_the_host_header(server: tuple[str, int], new_key: NewKey) -> None:
    response = httpx.post(
        f"http://{server[0]}:{server[1]}/v1/uploads",
        headers={"Authorization": f"Bearer {new_key.secret}", "Host": "evil.example"},
        json={"filename": "a.wav", "bytes": 1000, "purpose": "audio"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["upload"]["url"].startswith("https://api.example.test/_local/uploads/")
    assert "evil.example" not in response.text


def test_a_form_without_its_closing_boundary_is_refused_and_free(server: tuple[str, int], new_key: NewKey) -> None:
    wav = audio_bytes("wav", 1.0)
    body = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n' + wav[: len(wav) // 2]
    response = httpx.post(
        f"http://{server[0]}:{server[1]}/v1/audio/transcriptions",
        headers={"Authorization": f"Bearer {new_key.secret}", "Content-Type": "multipart/form-data; boundary=B"},
        content=body,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert "closing boundary" in response.json()["error"]["message"]
    assert [e.kind for e in get_runtime().store.list_ledger(new_key.account.id)] == ["topup"]


def _form(wav: bytes) -> tuple[bytes, str]:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\ntranscribe\r\n'
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n' + wav + b"\r\n--B--\r\n"
    )
    return body, "multipart/form-data; boundary=B"


def test_a_chunked_upload_is_read_from_the_socket_by_the_function(server: tuple[str, int], new_key: NewKey) -> None:
    """The local fast path: a multipart body (here chunked, length unknown) is parsed as it arrives."""
    body, content_type = _form(audio_bytes("wav", 2.0))
    response = httpx.post(
        f"http://{server[0]}:{server[1]}/v1/audio/transcriptions",
        headers={"Authorization": f"Bearer {new_key.secret}", "Content-Type": content_type},
        content=iter([body[i : i + 7000] for i in range(0, len(body), 7000)]),
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-Earshot-Cost-USD"] != "0.000000"
    assert len(get_runtime().store.list_ledger(new_key.account.id)) > 1  # the top-up, then the charge


def test_a_chunked_upload_past_the_limit_is_refused_in_the_routes_contract(
    server: tuple[str, int], new_key: NewKey
) -> None:
    body, content_type = _form(b"\0" * (5 * MB))  # the server's limit is 2 MB (+ the form's overhead)
    response = httpx.post(
        f"http://{server[0]}:{server[1]}/v1/audio/understand",
        headers={"Authorization": f"Bearer {new_key.secret}", "Content-Type": content_type},
        content=iter([body[i : i + MB] for i in range(0, len(body), MB)]),
    )
    assert response.status_code == 413
    assert "close" in response.headers["Connection"]
    assert [e.kind for e in get_runtime().store.list_ledger(new_key.account.id)] == ["topup"]
    assert response.json()["error"]["code"] == "file_too_large"
