"""The local server at the HTTP level: malformed requests get the envelope and a 4xx, bodies are read bounded,
truncated forms are refused unprocessed, and links come from configuration, never from the Host header.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from audio_fixtures import audio_bytes
from hostile_http import malformed_http, send_raw
from local_server import serve_in_thread

from earshot.config import reset_settings
from earshot.runtime import get_runtime
from earshot.services.accounts import NewKey

MB = 1024 * 1024


@pytest.fixture
def server(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    monkeypatch.setenv("EARSHOT_PUBLIC_BASE_URL", "https://api.example.test")
    reset_settings()
    with serve_in_thread(max_request_bytes=2 * MB, timeout_sec=10) as address:
        yield address
    reset_settings()


def _raw(address: tuple[str, int], data: bytes) -> tuple[int, dict[str, object]]:
    """Send raw bytes, half-close, and parse the status line and JSON body of the answer."""
    answer = send_raw(address, data, timeout=10)
    assert answer.headers["content-type"].startswith("application/json")
    return answer.status, json.loads(answer.body)


MALFORMED = malformed_http("/v1/audio/transcriptions")


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
        timeout=60,  # the engine may load cold here: httpx's default 5 s failed once on a loaded machine
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


def _presigned(server: tuple[str, int], new_key: NewKey, size: int) -> str:
    """The path of a presigned upload URL signed for ``size`` bytes."""
    created = httpx.post(
        f"http://{server[0]}:{server[1]}/v1/uploads",
        headers={"Authorization": f"Bearer {new_key.secret}"},
        json={"filename": "a.wav", "bytes": size},
    )
    assert created.status_code == 201, created.text
    url: str = created.json()["upload"]["url"]
    return "/_local/uploads/" + url.split("/_local/uploads/", 1)[1]


def _upload_leftovers() -> list[Path]:
    """Every file beside the blobs but the signing key and the uploads' records: staged parts and stored uploads."""
    root = get_runtime().blobs.root  # type: ignore[attr-defined]
    kept = {".upload-signing-key"}
    return [p for p in root.rglob("*") if p.is_file() and p.name not in kept and p.parent.name != "uploads"]


FORM_HEAD = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
FORM_TAIL = b"\r\n--B--\r\n"


def test_a_chunked_upload_past_its_signed_size_is_stopped_early_and_leaves_nothing(
    server: tuple[str, int], new_key: NewKey
) -> None:
    """A URL signed for 1,000 bytes: a chunked body is refused once it passes that (plus a form's overhead), not at
    the 500 MB route limit, with a message naming the signed size; nothing is staged or stored, nothing charged."""
    path = _presigned(server, new_key, 1000)
    piece = 64 * 1024
    chunk = f"{piece:x}\r\n".encode() + b"a" * piece + b"\r\n"
    with socket.create_connection(server, timeout=10) as connection:
        connection.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: multipart/form-data; boundary=B\r\n\r\n".encode()
            + f"{len(FORM_HEAD):x}\r\n".encode()
            + FORM_HEAD
            + b"\r\n"
        )
        sent = 0
        connection.settimeout(0.05)
        answer = b""
        for _ in range(800):  # 50 MB if nobody stopped it
            try:
                connection.sendall(chunk)
                sent += piece
            except TimeoutError:
                pass
            except OSError:
                break
            try:
                answer += connection.recv(65536)
            except TimeoutError:
                continue
            if b"\r\n\r\n" in answer:
                break
        connection.settimeout(10)
        while b"}" not in answer and (more := connection.recv(65536)):
            answer += more
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 4 * MB  # the answer came long before the body ended
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    assert error["code"] == "file_too_large" and "1000 bytes" in error["message"]
    assert "inline" not in error["message"]
    assert _upload_leftovers() == []
    assert [e.kind for e in get_runtime().store.list_ledger(new_key.account.id)] == ["topup"]


def test_an_upload_whose_content_length_passes_its_signed_size_is_refused_unread(
    server: tuple[str, int], new_key: NewKey
) -> None:
    path = _presigned(server, new_key, 1000)
    with socket.create_connection(server, timeout=10) as connection:
        connection.sendall(  # the head alone: the answer must come without a byte of the 10 MB body
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {10 * MB}\r\n"
            "Content-Type: multipart/form-data; boundary=B\r\n\r\n".encode()
        )
        answer = b""
        while b"}" not in answer and (more := connection.recv(65536)):
            answer += more
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    assert error["code"] == "file_too_large" and "1000 bytes" in error["message"]
    assert _upload_leftovers() == []


@pytest.mark.parametrize("chunked", [False, True])
def test_an_upload_of_its_signed_size_is_stored_however_it_is_framed(
    server: tuple[str, int], new_key: NewKey, chunked: bool
) -> None:
    path = _presigned(server, new_key, 1000)
    body = FORM_HEAD + b"w" * 1000 + FORM_TAIL
    response = httpx.post(
        f"http://{server[0]}:{server[1]}{path}",
        headers={"Content-Type": "multipart/form-data; boundary=B"},
        content=iter([body[:500], body[500:]]) if chunked else body,  # an iterator is sent chunked
    )
    assert response.status_code == 204, response.text
    assert [p.read_bytes() for p in _upload_leftovers()] == [b"w" * 1000]


def test_a_forged_upload_url_is_refused_from_its_head(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=10) as connection:
        connection.sendall(
            f"POST /_local/uploads/e30.{'0' * 64} HTTP/1.1\r\nHost: x\r\nContent-Length: {100 * MB}\r\n"
            "Content-Type: multipart/form-data; boundary=B\r\n\r\n".encode()
        )
        answer = b""
        while b"}" not in answer and (more := connection.recv(65536)):
            answer += more
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "auth_error"
