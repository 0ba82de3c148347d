"""``BodyPipe``: the event loop's hand-off of a request body to the worker reading it as it arrives."""

from __future__ import annotations

import threading
import time

import pytest

from earshot.errors import EarshotError, InvalidRequestError, RequestTimeoutError
from earshot.local.body_pipe import BodyPipe


def _pipe(*, capacity: int = 8, idle_sec: float = 5.0, wakes: list[int] | None = None) -> BodyPipe:
    woken = wakes if wakes is not None else []
    return BodyPipe(
        capacity=capacity,
        idle_sec=idle_sec,
        wake=lambda: woken.append(1),
        on_idle=lambda sec: RequestTimeoutError(f"nothing for {sec} s"),
    )


def test_bytes_come_out_in_order_then_the_end() -> None:
    pipe = _pipe()
    pipe.append(b"abc")
    pipe.append(memoryview(b"defgh"))
    pipe.finish()
    assert pipe.read(4) == b"abcd"
    assert pipe.read(100) == b"efgh"
    assert pipe.read(100) == b"" and pipe.ended
    assert len(pipe) == 8  # what arrived, as waitress counts it


def test_a_full_pipe_stops_the_reader_of_the_socket_and_wakes_it_when_drained() -> None:
    wakes: list[int] = []
    pipe = _pipe(capacity=8, wakes=wakes)
    pipe.append(b"x" * 10)
    assert not pipe.has_room()
    into = bytearray(4)
    assert pipe.readinto(into) == 4 and bytes(into) == b"xxxx"
    assert pipe.has_room() and wakes == [1]  # below capacity again: the event loop reads on


def test_a_read_waits_for_the_body_as_it_arrives() -> None:
    pipe = _pipe()
    threading.Timer(0.2, pipe.append, args=(b"late",)).start()
    started = time.monotonic()
    assert pipe.read(10) == b"late"
    assert time.monotonic() - started >= 0.15


def test_a_failed_body_raises_its_error_and_drops_what_was_held() -> None:
    pipe = _pipe()
    pipe.append(b"part")
    pipe.fail(InvalidRequestError("incomplete"))
    with pytest.raises(InvalidRequestError, match="incomplete"):
        pipe.read(10)
    pipe.append(b"more")  # what still arrives is dropped
    with pytest.raises(InvalidRequestError):
        pipe.read(10)
    assert not pipe.ended


def test_a_body_that_stops_arriving_times_out_for_the_reader() -> None:
    pipe = _pipe(idle_sec=0.2)
    pipe.append(b"ab")
    assert pipe.read(10) == b"ab"
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError) as raised:
        pipe.read(10)
    assert 0.15 <= time.monotonic() - started < 2
    assert isinstance(raised.value, EarshotError) and raised.value.status == 408
    with pytest.raises(RequestTimeoutError):  # and stays failed
        pipe.read(10)


def test_drain_reads_a_short_rest_but_gives_up_on_a_long_or_stalled_one() -> None:
    pipe = _pipe(capacity=1024)
    pipe.append(b"\r\n")  # a form's epilogue
    threading.Timer(0.05, pipe.finish).start()
    assert pipe.drain(max_bytes=1024, timeout_sec=2.0) is True

    long = _pipe(capacity=1 << 20)
    long.append(b"x" * 5000)
    assert long.drain(max_bytes=1024, timeout_sec=2.0) is False  # more than it would read: close instead

    stalled = _pipe()
    started = time.monotonic()
    assert stalled.drain(max_bytes=1024, timeout_sec=0.2) is False
    assert time.monotonic() - started < 1.5


def test_a_closed_pipe_ends_the_reader_and_ignores_what_still_comes() -> None:
    pipe = _pipe()
    pipe.close()
    pipe.append(b"late")
    assert pipe.read(10) == b""
