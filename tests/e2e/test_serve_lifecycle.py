"""`earshot serve` as a user behind a reverse proxy sees it: keep-alive connections, concurrent requests, and a
SIGTERM that stops taking connections but answers the requests already in flight."""

from __future__ import annotations

import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from audio_fixtures import audio_bytes
from local_server import start_server


def test_keep_alive_and_concurrency(server) -> None:  # type: ignore[no-untyped-def]
    key = server.create_key()
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        request = f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
        for _ in range(3):  # three requests, one connection
            connection.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                head += connection.recv(65536)
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
            assert b"connection: close" not in head.lower()
            length = int(
                next(line.split(b":")[1] for line in head.lower().split(b"\r\n") if line.startswith(b"content-length"))
            )
            body = head.split(b"\r\n\r\n", 1)[1]
            while len(body) < length:
                body += connection.recv(65536)
    with (
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        statuses = list(pool.map(lambda _: client.get("/v1/models").status_code, range(32)))
    assert statuses == [200] * 32


def test_sigterm_answers_requests_in_flight_then_stops(tmp_path: Path) -> None:
    running = start_server(tmp_path / "data")
    key = running.create_key()
    wav = audio_bytes("wav", 20.0)  # the embedded recogniser takes about a second on it
    answer: dict[str, object] = {}
    sent = threading.Event()

    def trace(event: str, info: dict[str, object]) -> None:
        if event == "http11.send_request_body.complete":
            sent.set()

    def transcribe() -> None:
        with httpx.Client(timeout=120) as client:
            response = client.post(
                f"{running.url}/v1/audio/transcriptions",
                headers={"Authorization": f"Bearer {key}"},
                files={"file": ("a.wav", wav)},
                data={"model": "transcribe"},
                extensions={"trace": trace},
            )
        answer["status"] = response.status_code
        answer["cost"] = response.headers.get("X-Earshot-Cost-USD")

    in_flight = threading.Thread(target=transcribe)
    in_flight.start()
    # The upload is in (on a loaded machine a fixed sleep could end before the client had even connected).
    assert sent.wait(timeout=60), "the upload was never sent"
    time.sleep(0.2)  # the engine is running
    running.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    refused = False
    try:
        httpx.get(f"{running.url}/v1/models", timeout=2)
    except httpx.TransportError:
        refused = True
    in_flight.join(timeout=120)
    assert running.process.wait(timeout=60) == 0
    assert refused, "a new connection was accepted after SIGTERM"
    assert answer == {"status": 200, "cost": "0.000900"}
