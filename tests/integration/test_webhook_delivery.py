"""Webhook delivery to a real receiver on 127.0.0.1, through the SSRF-safe fetcher in loopback mode.

The receiver verifies every request the way a customer's would (Standard Webhooks headers, the
shared secret), answers 500 twice and then 200, and the delivery must get through on the third try.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from earshot.webhooks import WebhookVerificationError, deliver, generate_secret, verify

TASK = {
    "id": "task-llm-1776874565-yq3szvcu",
    "object": "llm.generation.task",
    "kind": "llm",
    "model": "gemini-2.5-pro",
    "status": "completed",
    "progress": 100,
    "results": [{"object": "chat.completion", "choices": [{"message": {"role": "assistant", "content": "Hi"}}]}],
    "error": None,
}


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int


@dataclass
class Receiver:
    url: str
    secret: str
    failures_left: int
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Server(ThreadingHTTPServer):
    receiver: Receiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        receiver = self.server.receiver
        try:
            verify(receiver.secret, headers, body)
            verified = True
        except WebhookVerificationError:
            verified = False
        with receiver.lock:
            failing = receiver.failures_left > 0
            receiver.failures_left -= 1 if failing else 0
            status = 401 if not verified else 500 if failing else 200
            receiver.received.append(Received(headers=headers, body=body, verified=verified, answered=status))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.receiver = Receiver(
        url=f"http://127.0.0.1:{server.server_address[1]}/hooks/earshot", secret=generate_secret(), failures_left=2
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.receiver
    server.shutdown()
    server.server_close()


def test_a_receiver_that_fails_twice_gets_the_signed_task_on_the_third_try(receiver: Receiver) -> None:
    body = json.dumps(TASK).encode()
    waits: list[float] = []

    record = deliver(
        receiver.url,
        body,
        receiver.secret,
        msg_id=f"msg_{TASK['id']}",
        attempts=5,
        backoff=0.5,
        deadline_sec=5,
        allow_loopback=True,
        sleep=waits.append,
    )

    assert record.delivered and record.attempts == 3 and record.status_code == 200
    assert [attempt.status_code for attempt in record.history] == [500, 500, 200]
    assert waits == [0.5, 1.0]
    assert [request.answered for request in receiver.received] == [500, 500, 200]
    assert all(request.verified for request in receiver.received)
    assert {request.headers["webhook-id"] for request in receiver.received} == {f"msg_{TASK['id']}"}
    assert all(request.headers["content-type"] == "application/json" for request in receiver.received)
    assert json.loads(receiver.received[-1].body) == TASK


def test_a_receiver_with_another_secret_never_accepts(receiver: Receiver) -> None:
    receiver.failures_left = 0

    record = deliver(
        receiver.url,
        b"{}",
        generate_secret(),
        attempts=2,
        allow_loopback=True,
        sleep=lambda seconds: None,
    )

    assert not record.delivered and record.status_code == 401
    assert [request.verified for request in receiver.received] == [False, False]


def test_a_loopback_callback_is_refused_outside_testing_mode(receiver: Receiver) -> None:
    record = deliver(receiver.url, b"{}", receiver.secret, attempts=2, sleep=lambda seconds: None)

    assert not record.delivered and record.status_code is None
    assert record.error is not None and "callback_url" in record.error
    assert receiver.received == []  # nothing ever reached the receiver


def test_an_unreachable_receiver_is_a_failed_delivery_not_an_exception() -> None:
    # Port 9 (discard) on loopback: nothing listens there in the test environment.
    record = deliver(
        "http://127.0.0.1:9/hooks",
        b"{}",
        generate_secret(),
        attempts=2,
        deadline_sec=2,
        allow_loopback=True,
        sleep=lambda seconds: None,
    )

    assert not record.delivered and record.attempts == 2
    assert all(attempt.error and attempt.status_code is None for attempt in record.history)
