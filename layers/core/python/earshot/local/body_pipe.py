"""A request body handed from the local server's event loop to a worker thread while it still arrives.

waitress gives a request to a worker only once its whole body is in (spooling a big one to a temp file first), so
an upload was received, then parsed and spooled, then metered and sent upstream, one after the other. For a
multipart upload the server instead starts the worker at the end of the head and feeds the body through a
``BodyPipe``: the event loop appends what each ``recv`` brings, the worker's form parser reads it as it comes, and
receiving overlaps parsing and spooling. The pipe holds at most about ``capacity`` bytes: past that the loop stops
reading the socket (TCP pushes back on the client) until the worker has taken some.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from earshot.errors import EarshotError


class BodyPipe:
    """A bounded byte pipe: one producer (the event loop), one consumer (the worker running the request).

    The producer calls ``append`` and then ``finish`` (the body is whole) or ``fail`` (it never will be: the client
    closed or stalled, its framing broke, it passed its limit); the consumer ``readinto``/``read``s until it gets 0
    bytes (the end) or the failure's ``EarshotError``. ``close`` (the request is done) drops whatever still comes.
    """

    def __init__(
        self,
        *,
        capacity: int,
        idle_sec: float,
        wake: Callable[[], None],
        on_idle: Callable[[float], EarshotError],
    ) -> None:
        self.capacity = capacity
        self._idle_sec = idle_sec
        self._wake = wake  # wakes the event loop, so that it reads the socket again once there is room
        self._on_idle = on_idle  # the error of a client that sent nothing for ``idle_sec``
        self._lock = threading.Condition(threading.Lock())
        self._buf = bytearray()
        self._received = 0
        self._ended = False
        self._failure: EarshotError | None = None
        self._closed = False

    # --- the event loop's side ---------------------------------------------------------------------------------

    def append(self, data: bytes | memoryview) -> None:
        with self._lock:
            self._received += len(data)
            if self._closed or self._failure is not None:
                return
            self._buf += data
            self._lock.notify()

    def finish(self) -> None:
        with self._lock:
            self._ended = True
            self._lock.notify()

    def fail(self, error: EarshotError) -> None:
        with self._lock:
            if not self._ended and self._failure is None:
                self._failure = error
                self._buf.clear()
            self._lock.notify()

    def has_room(self) -> bool:
        return len(self._buf) < self.capacity  # read without the lock: a stale answer only delays a read by a turn

    def __len__(self) -> int:  # waitress's buffer interface: the bytes received so far
        return self._received

    def getfile(self) -> BodyPipe:  # waitress's buffer interface: what becomes ``wsgi.input``
        return self

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._buf = bytearray()
            self._lock.notify()

    # --- the worker's side -------------------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """The whole body arrived and was read (what follows on the connection is the next request)."""
        with self._lock:
            return self._ended and not self._buf and self._failure is None

    def readinto(self, into: memoryview | bytearray, /) -> int:
        """Block until some of the body is there; copy up to ``len(into)`` bytes of it; 0 at its end."""
        wanted = len(into)
        if wanted == 0:
            return 0
        with self._lock:
            deadline = time.monotonic() + self._idle_sec
            while not self._buf:
                if self._failure is not None:
                    raise self._failure
                if self._ended or self._closed:
                    return 0
                left = deadline - time.monotonic()
                if left <= 0:
                    self._failure = self._on_idle(self._idle_sec)
                    raise self._failure
                self._lock.wait(left)
            was_full = len(self._buf) >= self.capacity
            size = min(wanted, len(self._buf))
            into[:size] = memoryview(self._buf)[:size]
            del self._buf[:size]  # bytearray drops its head in O(1)
            refill = was_full and len(self._buf) < self.capacity
        if refill:
            self._wake()
        return size

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            pieces = []
            while piece := self.read(1024 * 1024):
                pieces.append(piece)
            return b"".join(pieces)
        buffer = bytearray(size)
        got = self.readinto(buffer)
        del buffer[got:]
        return bytes(buffer)

    def drain(self, *, max_bytes: int, timeout_sec: float) -> bool:
        """Read and drop what is left of the body (a form's epilogue after its closing boundary, say), up to
        ``max_bytes`` and ``timeout_sec``; True if the body then ended cleanly (the connection can be reused)."""
        deadline = time.monotonic() + timeout_sec
        dropped = 0
        while True:
            with self._lock:
                if self._failure is not None or self._closed:
                    return False
                if not self._buf:
                    if self._ended:
                        return True
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._lock.wait(left)
                    continue
                dropped += len(self._buf)
                self._buf.clear()
            self._wake()  # room again: the loop reads on
            if dropped > max_bytes:
                return False
