"""The DynamoDB table layout: one definition, used by the CDK data construct, the adapters, and the
tests that create tables under moto. Change a key here and all three follow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

AttrType = Literal["S", "N"]


@dataclass(frozen=True)
class Key:
    name: str
    type: AttrType = "S"


@dataclass(frozen=True)
class Index:
    name: str
    partition: Key
    sort: Key | None = None


@dataclass(frozen=True)
class TableSpec:
    """A table: its logical name (``EARSHOT_<LOGICAL>_TABLE`` holds the physical one), keys, indexes, TTL."""

    logical: str
    partition: Key
    sort: Key | None = None
    indexes: tuple[Index, ...] = field(default_factory=tuple)
    ttl_attribute: str | None = None

    @property
    def env_var(self) -> str:
        return f"EARSHOT_{self.logical.upper()}_TABLE"

    def create_table_kwargs(self, table_name: str) -> dict[str, Any]:
        """``boto3`` ``create_table`` arguments (on-demand), for tests and tooling."""
        attributes = {self.partition}
        key_schema = [{"AttributeName": self.partition.name, "KeyType": "HASH"}]
        if self.sort:
            attributes.add(self.sort)
            key_schema.append({"AttributeName": self.sort.name, "KeyType": "RANGE"})
        gsis = []
        for index in self.indexes:
            attributes.add(index.partition)
            index_keys = [{"AttributeName": index.partition.name, "KeyType": "HASH"}]
            if index.sort:
                attributes.add(index.sort)
                index_keys.append({"AttributeName": index.sort.name, "KeyType": "RANGE"})
            gsis.append({"IndexName": index.name, "KeySchema": index_keys, "Projection": {"ProjectionType": "ALL"}})
        kwargs: dict[str, Any] = {
            "TableName": table_name,
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": key_schema,
            "AttributeDefinitions": [
                {"AttributeName": k.name, "AttributeType": k.type} for k in sorted(attributes, key=lambda k: k.name)
            ],
        }
        if gsis:
            kwargs["GlobalSecondaryIndexes"] = gsis
        return kwargs


OPEN_HOLD_ATTRIBUTE = "open_hold"
OPEN_HOLD = "open"

# Accounts: the balance lives here, changed only by conditional updates inside transactions.
ACCOUNTS = TableSpec("accounts", partition=Key("account_id"))

# API keys by SHA-256 of the secret (the authorizer's lookup); by id for the operator's commands.
API_KEYS = TableSpec("api_keys", partition=Key("key_hash"), indexes=(Index("by_key_id", Key("key_id")),))

# Ledger: one item per money movement, keyed by "<request_id>#<kind>" so a retried debit, refund or
# top-up cannot land twice (conditional put in the same transaction as the balance update).
# Listing an account's entries newest first uses the by_account index (entry ids sort by time).
# A debit carries ``open_hold`` until its work is delivered or refunded; the sparse open_holds index
# lists just those, oldest first, for crash recovery (the sweeper).
LEDGER = TableSpec(
    "ledger",
    partition=Key("request_key"),
    indexes=(
        Index("by_account", Key("account_id"), Key("entry_id")),
        Index("open_holds", Key(OPEN_HOLD_ATTRIBUTE), Key("created_at", "N")),
    ),
)

# Tasks (issue 5): one item per task; DynamoDB's TTL removes it after ``expires_at`` (the adapter
# already treats it as gone from then on). Status moves are conditional updates.
# An unfinished task carries ``unfinished`` (removed when it completes or fails); the sparse unfinished
# index lists just those by last change, for crash recovery (the sweeper), with no Scan.
UNFINISHED_ATTRIBUTE = "unfinished"
TASKS = TableSpec(
    "tasks",
    partition=Key("task_id"),
    indexes=(Index("unfinished", Key(UNFINISHED_ATTRIBUTE), Key("updated_at", "N")),),
    ttl_attribute="expires_at",
)

# A task's events for SSE, in ``seq`` order; an event is written only if its seq is still free and the
# task exists, so seqs have no gaps and a resumed reader misses nothing. They expire with the task.
TASK_EVENTS = TableSpec("task_events", partition=Key("task_id"), sort=Key("seq", "N"), ttl_attribute="expires_at")

# Workflow step markers, one item per (task, step): claimed on each attempt, output recorded once.
STEP_MARKERS = TableSpec("step_markers", partition=Key("task_id"), sort=Key("step"), ttl_attribute="expires_at")

# Idempotency-Key records, keyed "<account_id>#<key>", in the attribute layout of Powertools Idempotency's
# DynamoDB persistence (``expiration`` seconds, ``in_progress_expiration`` milliseconds, ``status``
# INPROGRESS / COMPLETED, ``validation`` the request hash, ``data`` the stored response).
IDEMPOTENCY = TableSpec("idempotency", partition=Key("id"), ttl_attribute="expiration")

# Rate-limit counters: one item per key and fixed window ("<key_id>#<window_start>"), expiring after it.
RATE_LIMITS = TableSpec("rate_limits", partition=Key("window_key"), ttl_attribute="expires_at")

TABLES: tuple[TableSpec, ...] = (
    ACCOUNTS,
    API_KEYS,
    LEDGER,
    TASKS,
    TASK_EVENTS,
    STEP_MARKERS,
    IDEMPOTENCY,
    RATE_LIMITS,
)
