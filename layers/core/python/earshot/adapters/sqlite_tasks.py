"""``TaskStore``, ``StepMarkers`` and ``IdempotencyStore`` on SQLite: the local mode's task bookkeeping.

Same conventions as ``sqlite_store``: the same database file in the data dir (opened by ``sqlite_db``),
and ``BEGIN IMMEDIATE`` around every read-check-write so concurrent requests serialize on the write
lock instead of racing (a status move, the next event ``seq``, an idempotency claim). These tables
are this module's own; nothing here touches the accounts or the ledger.

Expiry is checked on every read, as DynamoDB's TTL would be (its deletion is lazy too): a row past
its expiry is treated as absent and replaced when its key is used again.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from earshot.adapters.sqlite_db import SqliteDatabase
from earshot.errors import IdempotencyConflictError, NotFoundError, TaskTransitionError
from earshot.ports import (
    IDEMPOTENCY_TTL_SEC,
    TASK_TRANSITIONS,
    TASK_TTL_SEC,
    IdempotencyRecord,
    IdempotentResponse,
    Task,
    TaskEvent,
    TaskStatus,
)

Clock = Callable[[], float]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    document TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_account ON tasks (account_id);
CREATE TABLE IF NOT EXISTS task_events (
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL CHECK (seq >= 1),
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (task_id, seq)
);
CREATE TABLE IF NOT EXISTS step_markers (
    task_id TEXT NOT NULL,
    step TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    output TEXT,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (task_id, step)
);
CREATE TABLE IF NOT EXISTS idempotency (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('in_progress', 'completed')),
    response TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    in_progress_expires_ms INTEGER NOT NULL
);
"""


def _open(path: Path) -> SqliteDatabase:
    """The database with this module's tables in it."""
    db = SqliteDatabase(path)
    db.connection().executescript(_SCHEMA)
    return db


class SqliteTaskStore:
    """Local ``TaskStore`` and ``StepMarkers``. Safe to share between threads.

    Parameters
    ----------
    path
        The SQLite file (the data dir's ``earshot.db``, shared with ``SqliteStore``).
    clock
        Seconds since the epoch; injectable so tests can move time past an expiry.
    """

    def __init__(self, path: Path, *, clock: Clock = time.time) -> None:
        self._db = _open(path)
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())

    @staticmethod
    def _task(row: sqlite3.Row) -> Task:
        return Task.model_validate_json(row["document"])

    def _live_task_row(self, conn: sqlite3.Connection, task_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM tasks WHERE id = ? AND expires_at > ?", (task_id, self._now())
        ).fetchone()
        return row

    # -- tasks ----------------------------------------------------------------------------------
    def create_task(self, task: Task) -> Task:
        with self._db.write() as conn:
            conn.execute("DELETE FROM tasks WHERE id = ? AND expires_at <= ?", (task.id, self._now()))
            try:
                conn.execute(
                    "INSERT INTO tasks (id, account_id, status, document, expires_at) VALUES (?, ?, ?, ?, ?)",
                    (task.id, task.account_id, task.status, task.model_dump_json(), task.expires_at),
                )
            except sqlite3.IntegrityError as exc:
                raise IdempotencyConflictError(f"task {task.id} already exists") from exc
        return task

    def get_task(self, task_id: str) -> Task | None:
        row = self._live_task_row(self._db.connection(), task_id)
        return self._task(row) if row else None

    def list_unfinished(self, *, updated_before: int, limit: int = 100) -> list[Task]:
        rows = self._db.connection().execute(
            "SELECT * FROM tasks WHERE status IN ('pending', 'processing') AND expires_at > ?", (self._now(),)
        )
        tasks = [self._task(row) for row in rows.fetchall()]
        return sorted((t for t in tasks if t.updated_at < updated_before), key=lambda t: t.updated_at)[:limit]

    def update_task(
        self,
        task_id: str,
        *,
        status: TaskStatus | None = None,
        progress: int | None = None,
        results: list[Any] | None = None,
        error: dict[str, Any] | None = None,
        result_blob_key: str | None = None,
    ) -> Task:
        with self._db.write() as conn:
            row = self._live_task_row(conn, task_id)
            if row is None:
                raise NotFoundError(f"no task {task_id}")
            task = self._task(row)
            target = status or task.status
            if target not in TASK_TRANSITIONS[task.status]:
                raise TaskTransitionError(f"task {task_id} cannot move from {task.status} to {target}")
            changes: dict[str, Any] = {"status": target, "updated_at": self._now()}
            if target == "completed" and progress is None:
                progress = 100
            for name, value in (
                ("progress", progress),
                ("results", results),
                ("error", error),
                ("result_blob_key", result_blob_key),
            ):
                if value is not None:
                    changes[name] = value
            updated = Task.model_validate({**task.model_dump(), **changes})
            conn.execute(
                "UPDATE tasks SET status = ?, document = ? WHERE id = ?",
                (updated.status, updated.model_dump_json(), task_id),
            )
        return updated

    def append_event(self, task_id: str, *, type: str, data: dict[str, Any]) -> TaskEvent:
        with self._db.write() as conn:
            if self._live_task_row(conn, task_id) is None:
                raise NotFoundError(f"no task {task_id}")
            (last,) = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM task_events WHERE task_id = ?", (task_id,)
            ).fetchone()
            event = TaskEvent(seq=last + 1, task_id=task_id, type=type, data=data, created_at=self._now())
            conn.execute(
                "INSERT INTO task_events (task_id, seq, type, data, created_at) VALUES (?, ?, ?, ?, ?)",
                (task_id, event.seq, type, json.dumps(data), event.created_at),
            )
        return event

    def list_events(self, task_id: str, *, after_seq: int = 0, limit: int = 1000) -> list[TaskEvent]:
        conn = self._db.connection()
        if self._live_task_row(conn, task_id) is None:
            return []
        rows = conn.execute(
            "SELECT * FROM task_events WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?", (task_id, after_seq, limit)
        ).fetchall()
        return [
            TaskEvent(
                seq=row["seq"],
                task_id=row["task_id"],
                type=row["type"],
                data=json.loads(row["data"]),
                created_at=row["created_at"],
            )
            for row in rows
        ]

    def delete_task(self, task_id: str) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM tasks WHERE id = ?", (task_id,))  # events go with it (ON DELETE CASCADE)
            conn.execute("DELETE FROM step_markers WHERE task_id = ?", (task_id,))

    # -- step markers ---------------------------------------------------------------------------
    def _live_marker(self, conn: sqlite3.Connection, task_id: str, step: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM step_markers WHERE task_id = ? AND step = ? AND expires_at > ?", (task_id, step, self._now())
        ).fetchone()
        return row

    def claim_step(self, task_id: str, step: str) -> bool:
        with self._db.write() as conn:
            marker = self._live_marker(conn, task_id, step)
            if marker is None:
                conn.execute(
                    "INSERT OR REPLACE INTO step_markers (task_id, step, attempts, output, expires_at)"
                    " VALUES (?, ?, 1, NULL, ?)",
                    (task_id, step, self._now() + TASK_TTL_SEC),
                )
                return True
            conn.execute(
                "UPDATE step_markers SET attempts = attempts + 1 WHERE task_id = ? AND step = ?", (task_id, step)
            )
            return False

    def record_step_output(self, task_id: str, step: str, output: dict[str, Any]) -> dict[str, Any]:
        with self._db.write() as conn:
            marker = self._live_marker(conn, task_id, step)
            if marker is not None and marker["output"] is not None:
                recorded: dict[str, Any] = json.loads(marker["output"])
                return recorded
            text = json.dumps(output)
            if marker is None:
                conn.execute(
                    "INSERT OR REPLACE INTO step_markers (task_id, step, attempts, output, expires_at)"
                    " VALUES (?, ?, 0, ?, ?)",
                    (task_id, step, text, self._now() + TASK_TTL_SEC),
                )
            else:
                conn.execute("UPDATE step_markers SET output = ? WHERE task_id = ? AND step = ?", (text, task_id, step))
        stored: dict[str, Any] = json.loads(text)  # the stored form, as a later reader sees it
        return stored

    def get_step_output(self, task_id: str, step: str) -> dict[str, Any] | None:
        marker = self._live_marker(self._db.connection(), task_id, step)
        if marker is None or marker["output"] is None:
            return None
        recorded: dict[str, Any] = json.loads(marker["output"])
        return recorded


class SqliteIdempotencyStore:
    """Local ``IdempotencyStore``: the Powertools semantics (lease, validation hash, expiry) on SQLite.

    Parameters
    ----------
    path
        The SQLite file (the data dir's ``earshot.db``).
    clock
        Seconds since the epoch; injectable so tests can move time past a lease or an expiry.
    """

    def __init__(self, path: Path, *, clock: Clock = time.time) -> None:
        self._db = _open(path)
        self._clock = clock

    @staticmethod
    def _id(account_id: str, key: str) -> str:
        return f"{account_id}#{key}"

    @staticmethod
    def _record(row: sqlite3.Row) -> IdempotencyRecord:
        response = IdempotentResponse.model_validate_json(row["response"]) if row["response"] else None
        return IdempotencyRecord(
            account_id=row["account_id"],
            key=row["key"],
            request_hash=row["request_hash"],
            status=row["status"],
            response=response,
            created_at=row["created_at"],
            expires_at=row["expires_at"],
        )

    def begin(
        self, account_id: str, key: str, request_hash: str, ttl_sec: int = IDEMPOTENCY_TTL_SEC, *, lease_sec: int = 900
    ) -> IdempotencyRecord:
        now = self._clock()
        record_id = self._id(account_id, key)
        with self._db.write() as conn:
            row: sqlite3.Row | None = conn.execute("SELECT * FROM idempotency WHERE id = ?", (record_id,)).fetchone()
            # Powertools' rule: a record past its expiry, or in progress past its lease (the owner died), is free.
            if (
                row is not None
                and row["expires_at"] >= int(now)
                and not (row["status"] == "in_progress" and row["in_progress_expires_ms"] < int(now * 1000))
            ):
                if row["request_hash"] != request_hash:
                    raise IdempotencyConflictError(
                        "this Idempotency-Key was already used with a different request", param="Idempotency-Key"
                    )
                if row["status"] == "in_progress":
                    raise IdempotencyConflictError(
                        "a request with this Idempotency-Key is still in progress; retry shortly",
                        param="Idempotency-Key",
                        retry_after=1,
                    )
                return self._record(row)
            record = IdempotencyRecord(
                account_id=account_id,
                key=key,
                request_hash=request_hash,
                status="in_progress",
                created_at=int(now),
                expires_at=int(now) + ttl_sec,
            )
            conn.execute(
                "INSERT OR REPLACE INTO idempotency (id, account_id, key, request_hash, status, response, created_at,"
                " expires_at, in_progress_expires_ms) VALUES (?, ?, ?, ?, 'in_progress', NULL, ?, ?, ?)",
                (
                    record_id,
                    account_id,
                    key,
                    request_hash,
                    record.created_at,
                    record.expires_at,
                    int(now * 1000) + lease_sec * 1000,
                ),
            )
        return record

    def complete(self, account_id: str, key: str, response: IdempotentResponse) -> IdempotencyRecord:
        record_id = self._id(account_id, key)
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT * FROM idempotency WHERE id = ? AND expires_at >= ?", (record_id, int(self._clock()))
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no idempotency record for key {key!r}")
            if row["status"] == "in_progress":
                conn.execute(
                    "UPDATE idempotency SET status = 'completed', response = ? WHERE id = ?",
                    (response.model_dump_json(), record_id),
                )
                row = conn.execute("SELECT * FROM idempotency WHERE id = ?", (record_id,)).fetchone()
        return self._record(row)

    def release_all_in_progress(self) -> int:
        """Forget every in-progress record: at start-up, their owners died with the previous process."""
        with self._db.write() as conn:
            return conn.execute("DELETE FROM idempotency WHERE status = 'in_progress'").rowcount

    def release(self, account_id: str, key: str) -> None:
        with self._db.write() as conn:
            conn.execute(
                "DELETE FROM idempotency WHERE id = ? AND status = 'in_progress'", (self._id(account_id, key),)
            )
