"""Multipart bodies the local server hands to the function while they still arrive (``earshot.local.body_pipe``).

A large upload starts its worker at the end of the head and is parsed as it comes: a client that stalls or hangs
up half-way, or whose form breaks early, is answered in the route's contract, charged nothing, and leaves no file;
one that sends its form whole gets the same answer as before, on a connection it can reuse.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from audio_fixtures import audio_bytes
from local_server import serve_in_thread

from earshot.config import reset_settings
from earshot.local import server as local_server
from earshot.runtime import get_runtime
from earshot.services.accounts import NewKey

MB = 1024 * 1024
ROUTE = "/v1/audio/transcriptions"


@pytest.fixture
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the server stages uploads (a directory of this test's own, so leftovers can be counted)."""
    directory = tmp_path / "staging"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


@pytest.fixture
def server(data_dir: Path, staging: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    monkeypatch.setattr(local_server, "_BODY_IDLE_SEC", 1.0)
    reset_settings()
    with serve_in_thread(max_request_bytes=8 * MB, timeout_sec=30) as address:
        yield address
    reset_settings()


def _form(audio: bytes, boundary: bytes = b"B") -> bytes:
    return (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="model"\r\n\r\ntranscribe\r\n'
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" + audio + b"\r\n--" + boundary + b"--\r\n"
    )


def _head(key: NewKey, length: int, path: str = ROUTE) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key.secret}\r\n"
        f"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _answer(connection: socket.socket) -> tuple[int, dict[str, str], dict[str, object]]:
    """Read one answer with a Content-Length body: status, headers, JSON body."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = connection.recv(65536)
        assert piece, f"the connection closed before an answer: {data!r}"
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        piece = connection.recv(65536)
        assert piece
        body += piece
    return int(lines[0].split(" ", 2)[1]), headers, json.loads(body)


def _charged_nothing(key: NewKey) -> bool:
    return [entry.kind for entry in get_runtime().store.list_ledger(key.account.id)] == ["topup"]


def _left_in(directory: Path, *, wait_sec: float = 5.0) -> list[Path]:
    """The staged files still there (the server deletes them just after the answer: allow it a moment)."""
    deadline = time.monotonic() + wait_sec
    while (left := list(directory.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.parametrize(("path", "expected"), [(ROUTE, 408), ("/api/v2/Audio/transcribe", 400)])
def test_a_client_that_stalls_mid_body_gets_a_timeout_is_not_charged_and_leaves_no_file(
    server: tuple[str, int], new_key: NewKey, staging: Path, path: str, expected: int
) -> None:
    """408 in the OpenAI-style contract; the v2 contract has no 408 and answers it as its 400."""
    body = _form(audio_bytes("wav", 30.0))  # ~1 MB: streamed to the function
    with socket.create_connection(server, timeout=15) as connection:
        connection.sendall(_head(new_key, len(body), path) + body[: len(body) // 2])
        started = time.monotonic()
        status, headers, payload = _answer(connection)  # nothing more is sent: the body stalls
        waited = time.monotonic() - started
    assert status == expected, payload
    error = payload["error"]
    assert isinstance(error, dict) and error["code"] == "invalid_request"
    assert "stopped arriving" in str(error["message"])
    assert headers["connection"] == "close"
    assert 0.5 < waited < 10  # the idle limit (1 s here), not the client, ended it
    assert _charged_nothing(new_key)
    assert _left_in(staging) == []


def test_a_client_that_hangs_up_mid_body_is_answered_not_charged_and_leaves_no_file(
    server: tuple[str, int], new_key: NewKey, staging: Path
) -> None:
    body = _form(audio_bytes("wav", 30.0))
    with socket.create_connection(server, timeout=15) as connection:
        connection.sendall(_head(new_key, len(body)) + body[: len(body) // 2])
        connection.shutdown(socket.SHUT_WR)
        status, _headers, payload = _answer(connection)
    assert status == 400
    error = payload["error"]
    assert isinstance(error, dict) and "incomplete" in str(error["message"])
    assert _charged_nothing(new_key)
    assert _left_in(staging) == []


@pytest.mark.parametrize("path", [ROUTE, "/api/v2/Audio/transcribe"])
def test_a_form_that_breaks_early_is_refused_before_the_rest_arrives(
    server: tuple[str, int], new_key: NewKey, staging: Path, path: str
) -> None:
    """A part head without a colon, 64 kB into a 4 MB body: the answer comes at once, in the route's contract,
    while the client still holds most of its body (the connection then closes: the rest is not a request)."""
    broken = b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\ntranscribe\r\n--B\r\nno colon here\r\n\r\n'
    length = 4 * MB
    with socket.create_connection(server, timeout=15) as connection:
        connection.sendall(_head(new_key, length, path) + broken + b"\0" * (64 * 1024))
        started = time.monotonic()
        status, headers, payload = _answer(connection)
        assert time.monotonic() - started < 5
    assert status == 400
    error = payload["error"]
    assert isinstance(error, dict) and error["code"] == "invalid_request" and "colon" in str(error["message"])
    assert headers["connection"] == "close"
    assert _charged_nothing(new_key)
    assert _left_in(staging) == []


def test_a_chunked_body_past_the_limit_is_refused_while_it_arrives(
    server: tuple[str, int], new_key: NewKey, staging: Path
) -> None:
    """A chunked body (length unknown) whose file part grows past the server's 8 MB: 413 in the route's contract
    once it passes, nothing charged, the part staged so far deleted."""
    head = (
        f"POST {ROUTE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {new_key.secret}\r\n"
        "Content-Type: multipart/form-data; boundary=B\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    part = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    chunk = b"40000\r\n" + b"\0" * 0x40000 + b"\r\n"
    sent = 0
    with socket.create_connection(server, timeout=15) as connection:
        connection.sendall(head + f"{len(part):x}\r\n".encode() + part + b"\r\n")
        try:
            for _ in range(200):  # 50 MB if nobody stopped it
                connection.sendall(chunk)
                sent += 1
        except OSError:  # the server answered and closed: the rest is refused
            pass
        status, _headers, payload = _answer(connection)
    assert status == 413
    error = payload["error"]
    assert isinstance(error, dict) and error["code"] == "file_too_large"
    assert sent < 100
    assert _charged_nothing(new_key)
    assert _left_in(staging) == []


def test_streamed_uploads_are_answered_as_before_on_one_kept_alive_connection(
    server: tuple[str, int], new_key: NewKey, staging: Path
) -> None:
    """Two 1 MB uploads (one Content-Length, one chunked) on one connection: both transcribed and charged, the
    connection reused, the staged files gone."""
    body = _form(audio_bytes("wav", 30.0))
    with httpx.Client(base_url=f"http://{server[0]}:{server[1]}", timeout=120) as client:
        headers = {"Authorization": f"Bearer {new_key.secret}", "Content-Type": "multipart/form-data; boundary=B"}
        first = client.post(ROUTE, headers=headers, content=body)
        second = client.post(
            ROUTE, headers=headers, content=iter([body[i : i + 300_000] for i in range(0, len(body), 300_000)])
        )
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json()["text"] == second.json()["text"]
    assert first.headers.get("connection") != "close" and second.headers.get("connection") != "close"
    charges = [e for e in get_runtime().store.list_ledger(new_key.account.id) if e.kind != "topup"]
    assert len(charges) == 2
    assert _left_in(staging) == []
