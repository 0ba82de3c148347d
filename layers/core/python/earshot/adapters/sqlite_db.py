"""The local mode's SQLite file: one connection per thread and ``BEGIN IMMEDIATE`` writes.

Every SQLite adapter (accounts, tasks, idempotency, rate limits) opens the same file through this, so
they all run with the same pragmas: WAL journal, a 30 s busy timeout, foreign keys on, and
``synchronous=NORMAL``. Connections are in autocommit mode (``isolation_level=None``); a write that
reads, checks and writes runs inside ``write()``, so concurrent requests serialize on the write lock
instead of racing.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_BUSY_TIMEOUT_SEC = 30.0


class SqliteDatabase:
    """One SQLite file, shared between threads: each thread gets its own connection.

    Parameters
    ----------
    path
        The SQLite file; its folder is created when missing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.connection().execute("PRAGMA journal_mode=WAL")  # a property of the file: set once, kept

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit, rows as ``sqlite3.Row``), opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_SEC, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_SEC * 1000)}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: committed on exit, rolled back on any exception."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
