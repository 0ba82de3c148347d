"""``AccountStore`` on SQLite: the local mode's store (one file in the data dir, opened by ``sqlite_db``).

``BEGIN IMMEDIATE`` around every write, so concurrent requests serialize on the write lock instead
of racing: a debit is a conditional ``UPDATE ... WHERE balance >= amount`` plus its ledger row, in
one transaction.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from earshot.adapters.sqlite_db import SqliteDatabase
from earshot.errors import BillingError, NotFoundError
from earshot.keys import new_id, new_sortable_id
from earshot.ports import Account, ApiKey, Charge, LedgerEntry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    balance_micro_usd INTEGER NOT NULL CHECK (balance_micro_usd >= 0),
    audio_enabled INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    webhook_secret TEXT
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ledger (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    request_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('debit', 'refund', 'topup')),
    amount_micro_usd INTEGER NOT NULL,
    balance_after_micro_usd INTEGER NOT NULL CHECK (balance_after_micro_usd >= 0),
    model TEXT,
    duration_ms INTEGER,
    billable_minutes INTEGER,
    description TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    UNIQUE (request_id, kind)
);
CREATE INDEX IF NOT EXISTS ledger_by_account ON ledger (account_id, id);
-- One row per debit while its work is not yet delivered or refunded: what crash recovery reads.
CREATE TABLE IF NOT EXISTS open_holds (
    request_id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS open_holds_by_age ON open_holds (created_at);
"""


_CREDIT_SQL = "UPDATE accounts SET balance_micro_usd = balance_micro_usd + ? WHERE id = ? RETURNING balance_micro_usd"


class SqliteStore:
    """Local ``AccountStore``. Safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = SqliteDatabase(path)
        self._db.connection().executescript(_SCHEMA)
        self._migrate()

    # -- plumbing -------------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Bring a data dir made by an older version up to ``_SCHEMA`` (columns added since)."""
        with self._db.write() as conn:  # under the write lock: two processes opening one old file add it once
            columns = {row["name"] for row in conn.execute("PRAGMA table_info(accounts)")}
            if "webhook_secret" not in columns:
                conn.execute("ALTER TABLE accounts ADD COLUMN webhook_secret TEXT")

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._db.connection().execute(sql, args).fetchone()
        return row

    @staticmethod
    def _account(row: sqlite3.Row) -> Account:
        return Account(
            id=row["id"],
            name=row["name"],
            balance_micro_usd=row["balance_micro_usd"],
            audio_enabled=bool(row["audio_enabled"]),
            created_at=row["created_at"],
        )

    @staticmethod
    def _key(row: sqlite3.Row) -> ApiKey:
        return ApiKey(
            id=row["id"],
            account_id=row["account_id"],
            name=row["name"],
            key_hash=row["key_hash"],
            hint=row["hint"],
            created_at=row["created_at"],
            revoked=bool(row["revoked"]),
        )

    @staticmethod
    def _entry(row: sqlite3.Row) -> LedgerEntry:
        return LedgerEntry(**{key: row[key] for key in row.keys()})  # noqa: SIM118 - sqlite3.Row

    def _insert_entry(self, conn: sqlite3.Connection, entry: LedgerEntry) -> None:
        data = entry.model_dump()
        columns = ", ".join(data)
        marks = ", ".join("?" for _ in data)
        conn.execute(f"INSERT INTO ledger ({columns}) VALUES ({marks})", tuple(data.values()))

    def _existing_entry(self, conn: sqlite3.Connection, request_id: str, kind: str) -> LedgerEntry | None:
        row = conn.execute("SELECT * FROM ledger WHERE request_id = ? AND kind = ?", (request_id, kind)).fetchone()
        return self._entry(row) if row else None

    # -- accounts and keys ----------------------------------------------------------------------
    def create_account(self, *, name: str, balance_micro_usd: int) -> Account:
        now = int(time.time())
        account = Account(id=new_id("acct"), name=name, balance_micro_usd=balance_micro_usd, created_at=now)
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO accounts (id, name, balance_micro_usd, audio_enabled, created_at) VALUES (?, ?, ?, 1, ?)",
                (account.id, name, balance_micro_usd, now),
            )
            self._insert_entry(
                conn,
                LedgerEntry(
                    id=new_sortable_id("led"),
                    account_id=account.id,
                    request_id=f"open-{account.id}",
                    kind="topup",
                    amount_micro_usd=balance_micro_usd,
                    balance_after_micro_usd=balance_micro_usd,
                    description="opening balance",
                    created_at=now,
                ),
            )
        return account

    def get_account(self, account_id: str) -> Account | None:
        row = self._one("SELECT * FROM accounts WHERE id = ?", account_id)
        return self._account(row) if row else None

    def set_audio_enabled(self, account_id: str, enabled: bool) -> Account:
        with self._db.write() as conn:
            updated = conn.execute("UPDATE accounts SET audio_enabled = ? WHERE id = ?", (int(enabled), account_id))
            if updated.rowcount == 0:
                raise NotFoundError(f"no account {account_id}")
        account = self.get_account(account_id)
        assert account is not None
        return account

    def set_webhook_secret(self, account_id: str, secret: str) -> None:
        with self._db.write() as conn:
            updated = conn.execute("UPDATE accounts SET webhook_secret = ? WHERE id = ?", (secret, account_id))
            if updated.rowcount == 0:
                raise NotFoundError(f"no account {account_id}")

    def get_webhook_secret(self, account_id: str) -> str | None:
        row = self._one("SELECT webhook_secret FROM accounts WHERE id = ?", account_id)
        return str(row["webhook_secret"]) if row and row["webhook_secret"] is not None else None

    def create_api_key(self, *, account_id: str, name: str, key_hash: str, hint: str) -> ApiKey:
        key = ApiKey(
            id=new_sortable_id("key"),  # keys made within one second still list in the order they were made
            account_id=account_id,
            name=name,
            key_hash=key_hash,
            hint=hint,
            created_at=int(time.time()),
        )
        with self._db.write() as conn:
            if conn.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,)).fetchone() is None:
                raise NotFoundError(f"no account {account_id}")
            conn.execute(
                "INSERT INTO api_keys (id, account_id, name, key_hash, hint, created_at, revoked)"
                " VALUES (?, ?, ?, ?, ?, ?, 0)",
                (key.id, account_id, name, key_hash, hint, key.created_at),
            )
        return key

    def find_api_key(self, key_hash: str) -> ApiKey | None:
        row = self._one("SELECT * FROM api_keys WHERE key_hash = ?", key_hash)
        return self._key(row) if row else None

    def get_api_key(self, key_id: str) -> ApiKey | None:
        row = self._one("SELECT * FROM api_keys WHERE id = ?", key_id)
        return self._key(row) if row else None

    def list_api_keys(self) -> list[ApiKey]:
        rows = self._db.connection().execute("SELECT * FROM api_keys ORDER BY created_at, id").fetchall()
        return [self._key(row) for row in rows]

    def revoke_api_key(self, key_id: str) -> ApiKey:
        with self._db.write() as conn:
            if conn.execute("UPDATE api_keys SET revoked = 1 WHERE id = ?", (key_id,)).rowcount == 0:
                raise NotFoundError(f"no API key {key_id}")
        key = self.get_api_key(key_id)
        assert key is not None
        return key

    # -- money ----------------------------------------------------------------------------------
    def top_up(self, *, account_id: str, amount_micro_usd: int, request_id: str) -> LedgerEntry:
        if amount_micro_usd <= 0:
            raise ValueError("a top-up must be positive")
        with self._db.write() as conn:
            if existing := self._existing_entry(conn, request_id, "topup"):
                return existing
            row = conn.execute(
                _CREDIT_SQL,
                (amount_micro_usd, account_id),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no account {account_id}")
            entry = LedgerEntry(
                id=new_sortable_id("led"),
                account_id=account_id,
                request_id=request_id,
                kind="topup",
                amount_micro_usd=amount_micro_usd,
                balance_after_micro_usd=row[0],
                description="top-up",
                created_at=int(time.time()),
            )
            self._insert_entry(conn, entry)
        return entry

    def debit(self, charge: Charge) -> LedgerEntry:
        with self._db.write() as conn:
            if existing := self._existing_entry(conn, charge.request_id, "debit"):
                return existing
            row = conn.execute(
                "UPDATE accounts SET balance_micro_usd = balance_micro_usd - ?"
                " WHERE id = ? AND balance_micro_usd >= ? RETURNING balance_micro_usd",
                (charge.amount_micro_usd, charge.account_id, charge.amount_micro_usd),
            ).fetchone()
            if row is None:
                if conn.execute("SELECT 1 FROM accounts WHERE id = ?", (charge.account_id,)).fetchone() is None:
                    raise NotFoundError(f"no account {charge.account_id}")
                raise BillingError(
                    f"insufficient balance: this request costs ${charge.amount_micro_usd / 1_000_000:.6f};"
                    " top up and retry"
                )
            entry = LedgerEntry(
                id=new_sortable_id("led"),
                account_id=charge.account_id,
                request_id=charge.request_id,
                kind="debit",
                amount_micro_usd=-charge.amount_micro_usd,
                balance_after_micro_usd=row[0],
                model=charge.model,
                duration_ms=charge.duration_ms,
                billable_minutes=charge.billable_minutes,
                description=charge.description,
                created_at=int(time.time()),
            )
            self._insert_entry(conn, entry)
            conn.execute(
                "INSERT INTO open_holds (request_id, created_at) VALUES (?, ?)", (entry.request_id, entry.created_at)
            )
        return entry

    def refund(self, *, request_id: str, reason: str) -> LedgerEntry | None:
        with self._db.write() as conn:
            debit = self._existing_entry(conn, request_id, "debit")
            if debit is None:
                return None
            conn.execute("DELETE FROM open_holds WHERE request_id = ?", (request_id,))
            if existing := self._existing_entry(conn, request_id, "refund"):
                return existing
            amount = -debit.amount_micro_usd
            row = conn.execute(
                _CREDIT_SQL,
                (amount, debit.account_id),
            ).fetchone()
            entry = LedgerEntry(
                id=new_sortable_id("led"),
                account_id=debit.account_id,
                request_id=request_id,
                kind="refund",
                amount_micro_usd=amount,
                balance_after_micro_usd=row[0],
                model=debit.model,
                duration_ms=debit.duration_ms,
                billable_minutes=debit.billable_minutes,
                description=reason,
                created_at=int(time.time()),
            )
            self._insert_entry(conn, entry)
        return entry

    def capture(self, request_id: str) -> None:
        with self._db.write() as conn:
            conn.execute("DELETE FROM open_holds WHERE request_id = ?", (request_id,))

    def open_holds(self, *, created_before: int, limit: int = 100) -> list[LedgerEntry]:
        rows = self._db.connection().execute(
            "SELECT ledger.* FROM open_holds JOIN ledger ON ledger.request_id = open_holds.request_id"
            " AND ledger.kind = 'debit' WHERE open_holds.created_at < ? ORDER BY open_holds.created_at LIMIT ?",
            (created_before, limit),
        )
        return [self._entry(row) for row in rows.fetchall()]

    def list_ledger(self, account_id: str, *, limit: int = 100, before: str | None = None) -> list[LedgerEntry]:
        if before is None:
            rows = self._db.connection().execute(
                "SELECT * FROM ledger WHERE account_id = ? ORDER BY id DESC LIMIT ?", (account_id, limit)
            )
        else:
            rows = self._db.connection().execute(
                "SELECT * FROM ledger WHERE account_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
                (account_id, before, limit),
            )
        return [self._entry(row) for row in rows.fetchall()]
