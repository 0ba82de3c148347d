"""``RateLimiter`` adapters: a SQLite counter table locally, atomic ``ADD`` on DynamoDB in the cloud."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from earshot.adapters.sqlite_db import SqliteDatabase

# A window's counter outlives the window by this much, then expires (SQLite: pruned; DynamoDB: TTL).
_KEEP_SEC = 3600


class SqliteRateLimiter:
    def __init__(self, path: Path) -> None:
        self._db = SqliteDatabase(path)
        self._db.connection().execute(
            "CREATE TABLE IF NOT EXISTS rate_limits (window_key TEXT PRIMARY KEY, count INTEGER NOT NULL,"
            " expires_at INTEGER NOT NULL)"
        )

    def hit(self, key_id: str, *, window_start: int, window_sec: int) -> int:
        # Autocommit: the upsert is one atomic statement, so it needs no write transaction around it.
        conn = self._db.connection()
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
