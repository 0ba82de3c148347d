"""``RateLimiter`` adapters: a SQLite counter table locally, atomic ``ADD`` on DynamoDB in the cloud."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

# A window's counter outlives the window by this much, then expires (SQLite: pruned; DynamoDB: TTL).
_KEEP_SEC = 3600


class SqliteRateLimiter:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._local = threading.local()
        self._conn().execute(
            "CREATE TABLE IF NOT EXISTS rate_limits (window_key TEXT PRIMARY KEY, count INTEGER NOT NULL,"
            " expires_at INTEGER NOT NULL)"
        )

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def hit(self, key_id: str, *, window_start: int, window_sec: int) -> int:
        conn = self._conn()
        expires = window_start + window_sec + _KEEP_SEC
        row = conn.execute(
            "INSERT INTO rate_limits (window_key, count, expires_at) VALUES (?, 1, ?)"
            " ON CONFLICT (window_key) DO UPDATE SET count = count + 1 RETURNING count",
            (f"{key_id}#{window_start}", expires),
        ).fetchone()
        if row[0] == 1:  # first hit of a window: drop counters that have expired
            conn.execute("DELETE FROM rate_limits WHERE expires_at < ?", (window_start,))
        return int(row[0])


class DynamoRateLimiter:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def hit(self, key_id: str, *, window_start: int, window_sec: int) -> int:
        answer = self._client.update_item(
            TableName=self._table,
            Key={"window_key": {"S": f"{key_id}#{window_start}"}},
            UpdateExpression="ADD #count :one SET expires_at = if_not_exists(expires_at, :expires)",
            ExpressionAttributeNames={"#count": "count"},
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":expires": {"N": str(window_start + window_sec + _KEEP_SEC)},
            },
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["count"]["N"])
