"""A request body handed from the local server's event loop to a worker thread while it still arrives.

waitress gives a request to a worker only once its whole body is in (spooling a big one to a temp file first), so
an upload was received, then parsed and spooled, then metered and sent upstream, one after the other. For a
multipart upload the server instead starts the worker at the end of the head and feeds the body through a
``BodyPipe``: the event loop receives each piece of the body straight into the pipe's own blocks (``reserve``,
``recv_into``, ``commit``: no copy on the loop thread, which receives every upload), the worker's form parser reads
it as it comes, and receiving overlaps parsing and spooling. The pipe holds at most about ``capacity`` bytes: past
that the loop stops reading the socket (TCP pushes back on the client) until the worker has taken some.

The blocks belong to one pipe (never to a pool shared between requests): the loop writes only into a block no
reader can see yet (a new one, or the unread end of the last one), and a block read out is reused by the same
pipe's loop only once it is no longer the last, so a block is never written and recycled at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from earshot.errors import EarshotError

# The pipe's blocks: one ``recv`` fills at most one (the loop's buffer was 1 MiB before; as many loop turns).
BLOCK_BYTES = 1024 * 1024
# The unread end of the last block is filled by the next ``recv`` only when at least this much room is left.
_MIN_ROOM = 64 * 1024
# Blocks read out that the pipe keeps for its next pieces (its ``capacity`` in blocks, and one being filled).
_SPARE_BLOCKS = 3


class _Piece:
    """What arrived in one block: ``block[start:end]`` is still unread."""

    __slots__ = ("block", "end", "start")

    def __init__(self, block: bytearray, end: int) -> None:
        self.block = block
        self.start = 0
        self.end = end


class BodyPipe:
    """A bounded byte pipe: one producer (the event loop), one consumer (the worker running the request).

    The producer ``reserve``s room, receives into it and ``commit``s what it got (or ``append``s bytes it already
    has), and then calls ``finish`` (the body is whole) or ``fail`` (it never will be: the client closed or
    stalled, its framing broke, it passed its limit); the consumer ``readinto``/``read``s until it gets 0 bytes (the
    end) or the failure's ``EarshotError``. ``close`` (the request is done) drops whatever still comes.
    """

    def __init__(
        self,
        *,
        capacity: int,
        idle_sec: float,
        wake: Callable[[], None],
        on_idle: Callable[[float], EarshotError],
        block_bytes: int = BLOCK_BYTES,
    ) -> None:
        self.capacity = capacity
        self._idle_sec = idle_sec
        self._wake = wake  # wakes the event loop, so that it reads the socket again once there is room
        self._on_idle = on_idle  # the error of a client that sent nothing for ``idle_sec``
        self._lock = threading.Condition(threading.Lock())
        self._block_bytes = max(1, min(block_bytes, capacity))
        self._pieces: deque[_Piece] = deque()  # in arrival order; the last one's block may still be filled
        self._spare: list[bytearray] = []
        self._fresh: bytearray | None = None  # the block ``reserve`` handed out, queued by ``commit``
        self._buffered = 0  # received and not yet read
        self._received = 0
        self._ended = False
        self._failure: EarshotError | None = None
        self._closed = False

    # --- the event loop's side ---------------------------------------------------------------------------------

    def reserve(self, size: int) -> memoryview:
        """Room for up to ``size`` more bytes of the body (``recv_into`` it), to be ``commit``ted: the unread end of
        the last block when enough of it is left, else a new block. Only the event loop calls this."""
        with self._lock:
            if self._pieces:
                last = self._pieces[-1]
                room = len(last.block) - last.end
                if room >= min(size, _MIN_ROOM):
                    self._fresh = None
                    return memoryview(last.block)[last.end : last.end + min(room, size)]
            block = self._spare.pop() if self._spare else bytearray(self._block_bytes)
            self._fresh = block
            return memoryview(block)[: min(size, len(block))]

    def commit(self, size: int) -> None:
        """``size`` bytes were written into the room ``reserve`` gave."""
        with self._lock:
            self._received += size
            fresh, self._fresh = self._fresh, None
            if self._closed or self._failure is not None:
                return
            if size <= 0:
                if fresh is not None:
                    self._spare.append(fresh)
                return
            if fresh is not None:
                self._pieces.append(_Piece(fresh, size))
            else:
                self._pieces[-1].end += size
            self._buffered += size
            self._lock.notify()

    def append(self, data: bytes | memoryview) -> None:
        """Copy ``data`` in (what arrived with the head, a chunked body's pieces)."""
        view = memoryview(data).cast("B")
        if self._closed or self._failure is not None:
            with self._lock:
                self._received += len(view)
            return
        offset = 0
        while offset < len(view):
            room = self.reserve(len(view) - offset)
            size = len(room)
            room[:] = view[offset : offset + size]
            room.release()
            self.commit(size)
            offset += size

    def finish(self) -> None:
        with self._lock:
            self._ended = True
            self._lock.notify()

    def fail(self, error: EarshotError) -> None:
        with self._lock:
            if not self._ended and self._failure is None:
                self._failure = error
                self._drop_all()
            self._lock.notify()

    def has_room(self) -> bool:
        return self._buffered < self.capacity  # read without the lock: a stale answer only delays a read by a turn

    def __len__(self) -> int:  # waitress's buffer interface: the bytes received so far
        return self._received

    def getfile(self) -> BodyPipe:  # waitress's buffer interface: what becomes ``wsgi.input``
        return self

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop_all()
            self._lock.notify()

    def _drop_all(self) -> None:
        # A block the loop is still receiving into stays alive through its view; nothing is queued after this.
        self._pieces.clear()
        self._spare.clear()
        self._buffered = 0

    # --- the worker's side -------------------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """The whole body arrived and was read (what follows on the connection is the next request)."""
        with self._lock:
            return self._ended and not self._buffered and self._failure is None

    def readinto(self, into: memoryview | bytearray, /) -> int:
        """Block until some of the body is there; copy up to ``len(into)`` bytes of it; 0 at its end."""
        wanted = len(into)
        if wanted == 0:
            return 0
        with self._lock:
            deadline = time.monotonic() + self._idle_sec
            while not self._buffered:
                if self._failure is not None:
                    raise self._failure
                if self._ended or self._closed:
                    return 0
                left = deadline - time.monotonic()
                if left <= 0:
                    self._failure = self._on_idle(self._idle_sec)
                    raise self._failure
                self._lock.wait(left)
            was_full = self._buffered >= self.capacity
            size = 0
            while size < wanted and self._buffered:
                piece = self._pieces[0]
                take = min(wanted - size, piece.end - piece.start)
                into[size : size + take] = memoryview(piece.block)[piece.start : piece.start + take]
                piece.start += take
                size += take
                self._buffered -= take
                self._release_read()
            refill = was_full and self._buffered < self.capacity
        if refill:
            self._wake()
        return size

    def _release_read(self) -> None:
        """Give the first block back for reuse once it is read out and the loop has moved on to a later one."""
        while len(self._pieces) > 1 and self._pieces[0].start == self._pieces[0].end:
            block = self._pieces.popleft().block
            if len(self._spare) < _SPARE_BLOCKS:
                self._spare.append(block)

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
                if not self._buffered:
                    if self._ended:
                        return True
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._lock.wait(left)
                    continue
                dropped += self._buffered
                for piece in self._pieces:
                    piece.start = piece.end
                self._buffered = 0
                self._release_read()
            self._wake()  # room again: the loop reads on
            if dropped > max_bytes:
                return False
