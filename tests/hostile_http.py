"""Hostile HTTP: raw requests a client library would never send, and the URLs no server-side fetch may reach.

Shared by the malformed-HTTP tests (``integration/test_local_http.py``), the URL policy tests
(``integration/test_url_policy.py``) and the hostile corpus across every route (``e2e/test_hostile_corpus.py``).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

# Refused whatever the settings: not https (nor http to an allowed loopback host in local development).
BAD_SCHEMES = [
    "ftp://example.com/a.wav",
    "file:///etc/passwd",
    "gopher://example.com/",
    "javascript:alert(1)",
    "http://example.com/a.wav",  # plain http to a public host: https only
    "//example.com/a.wav",
    "example.com/a.wav",
]
# Internal addresses in a few spellings; refused unless loopback is explicitly allowed.
INTERNAL = [
    "https://127.0.0.1/a.wav",
    "https://2130706433/a.wav",
    "https://[::1]/a.wav",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.1/a.wav",
    "https://localhost/a.wav",
    "https://0x7f.1/a.wav",
]


def malformed_http(path: str) -> dict[str, tuple[bytes, int]]:
    """Requests for ``path`` that HTTP itself gets wrong, and the status each must get."""
    target = path.encode()
    return {
        "garbage request line": (b"GARBAGE\r\n\r\n", 400),
        "request target over 64 kB": (b"GET " + target + b"?" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        "too many headers": (b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", 431),
        "header line over 64 kB": (
            b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nX-A: " + b"b" * 70_000 + b"\r\n\r\n",
            431,
        ),
        "invalid chunk size": (
            b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        "body shorter than Content-Length": (
            b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nshort",
            400,
        ),
    }


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def send_raw(address: tuple[str, int], data: bytes, *, timeout: float = 30) -> RawAnswer:
    """Send ``data`` as is, half-close, and read the whole answer (the server closes after it)."""
    with socket.create_connection(address, timeout=timeout) as connection:
        connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while piece := connection.recv(65536):
            answer += piece
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _unchunk(body)
    return RawAnswer(int(lines[0].split(" ", 2)[1]), headers, body)


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out
