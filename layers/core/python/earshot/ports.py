"""Ports: what the services need from storage, as Protocols.

Each port has a local adapter (SQLite, files) and a cloud adapter (DynamoDB, S3); both pass the
same contract suite in ``tests/contract``. Services receive ports as arguments and never know which
adapter they hold.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class PortModel(BaseModel):
    """Builds its validator on first use, not at import: a cold Lambda pays only for the models it touches."""

    model_config = ConfigDict(defer_build=True)


LedgerKind = Literal["debit", "refund", "topup"]


class Account(PortModel):
    id: str
    name: str
    balance_micro_usd: int
    audio_enabled: bool = True
    created_at: int


class ApiKey(PortModel):
    """A stored key: never the secret, only its SHA-256 and a hint."""

    id: str
    account_id: str
    name: str
    key_hash: str
    hint: str
    created_at: int
    revoked: bool = False


class Principal(PortModel):
    """Who is calling, as the authorizer resolved it. Carries ids only, never the key."""

    account_id: str
    key_id: str


class Charge(PortModel):
    """What a request is about to be charged for."""

    request_id: str
    account_id: str
    amount_micro_usd: int = Field(ge=0)
    model: str
    duration_ms: int = Field(ge=0)
    billable_minutes: int = Field(ge=0)
    description: str = ""


class LedgerEntry(PortModel):
    id: str
    account_id: str
    request_id: str
    kind: LedgerKind
    amount_micro_usd: int  # signed: debits are negative, refunds and top-ups positive
    balance_after_micro_usd: int
    model: str | None = None
    duration_ms: int | None = None
    billable_minutes: int | None = None
    description: str = ""
    created_at: int


class AccountStore(Protocol):
    """Accounts, keys and the money on them.

    Every balance change is one atomic unit with its ledger entry: the conditional update and the
    entry land together or not at all, and a balance never goes below zero.
    """

    def create_account(self, *, name: str, balance_micro_usd: int) -> Account:
        """Create an account; its opening balance is recorded as a ``topup`` ledger entry."""
        ...

    def get_account(self, account_id: str) -> Account | None: ...

    def set_audio_enabled(self, account_id: str, enabled: bool) -> Account:
        """Raise ``NotFoundError`` for an unknown account."""
        ...

    def set_webhook_secret(self, account_id: str, secret: str) -> None:
        """Store the secret that signs the account's webhooks, replacing any earlier one.

        Raise ``NotFoundError`` for an unknown account.
        """
        ...

    def get_webhook_secret(self, account_id: str) -> str | None:
        """The account's webhook signing secret; None when it has none yet (or there is no such account)."""
        ...

    def create_api_key(self, *, account_id: str, name: str, key_hash: str, hint: str) -> ApiKey:
        """Raise ``NotFoundError`` for an unknown account."""
        ...

    def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The key with this SHA-256, revoked or not."""
        ...

    def get_api_key(self, key_id: str) -> ApiKey | None: ...

    def list_api_keys(self) -> list[ApiKey]: ...

    def revoke_api_key(self, key_id: str) -> ApiKey:
        """Raise ``NotFoundError`` for an unknown key."""
        ...

    def top_up(self, *, account_id: str, amount_micro_usd: int, request_id: str) -> LedgerEntry:
        """Add money; idempotent per ``request_id``."""
        ...

    def debit(self, charge: Charge) -> LedgerEntry:
        """Take ``charge.amount_micro_usd`` if the balance covers it, else raise ``BillingError``.

        Idempotent per ``charge.request_id``: a second call returns the first entry, charging once.
        Raise ``NotFoundError`` for an unknown account, and ``RateLimitedError`` when the account is
        too contended to settle (cloud adapter, after bounded retries).
        """
        ...

    def refund(self, *, request_id: str, reason: str) -> LedgerEntry | None:
        """Give back the debit made under ``request_id``, once. None when there was no debit."""
        ...

    def list_ledger(self, account_id: str, *, limit: int = 100, before: str | None = None) -> list[LedgerEntry]:
        """Newest first; ``before`` is an entry id to page from.

        Entry ids sort by the writer's clock. The cloud adapter reads an index, so an entry written a
        moment ago may be missing for a moment.
        """
        ...


class RateLimiter(Protocol):
    """Atomic per-key request counters in fixed windows."""

    def hit(self, key_id: str, *, window_start: int, window_sec: int) -> int:
        """Count one request for ``key_id`` in the window starting at ``window_start``; the new count."""
        ...


class PresignedUpload(PortModel):
    """Where and how a client uploads one object itself: a form POST of ``fields`` plus ``file``."""

    url: str
    fields: dict[str, str]
    expires_at: int


class BlobStore(Protocol):
    """Audio and results by key (files locally, S3 in the cloud)."""

    def presign_upload(self, key: str, *, max_bytes: int, expires_in: int) -> PresignedUpload:
        """A form POST that stores at most ``max_bytes`` (at least 1) under ``key`` until it expires.

        The local adapter answers with a path (``/_local/uploads/...``) served by the local server.
        """
        ...

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None: ...

    def get(self, key: str) -> bytes:
        """Raise ``NotFoundError`` for a missing key."""
        ...

    def download(self, key: str, path: Path) -> None:
        """Write the blob to the local file ``path`` without holding it in memory; ``NotFoundError`` if missing."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Deleting a missing key is not an error."""
        ...


# -- tasks, their events, and the idempotency of requests and workflow steps -----------------------
#
# Appended for async tasks (issue 5). ``Any`` is needed for the JSON documents tasks carry.

TaskStatus = Literal["pending", "processing", "completed", "failed"]
FINAL_TASK_STATUSES: frozenset[str] = frozenset({"completed", "failed"})
# The only moves a task makes: pending → processing → completed | failed. Staying in a non-final
# state is allowed (a progress update, or a retried step that sets ``processing`` again).
TASK_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "pending": frozenset({"pending", "processing"}),
    "processing": frozenset({"processing", "completed", "failed"}),
    "completed": frozenset(),
    "failed": frozenset(),
}
# ``task-<kind>-<unix>-<8 lowercase alnum>``; the kind has no hyphen so the id splits unambiguously.
TASK_ID_PATTERN = r"^task-[a-z][a-z0-9]*-[0-9]+-[a-z0-9]{8}$"
_TASK_KIND_PATTERN = r"^[a-z][a-z0-9]*$"
_TASK_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
# The ``object`` a task of each kind reports; the llm one is the seed-002 contract's.
TASK_OBJECTS: Mapping[str, str] = {"llm": "llm.generation.task"}
TASK_TTL_SEC = 7 * 24 * 3600
IDEMPOTENCY_TTL_SEC = 24 * 3600


class Task(PortModel):
    """An async job and, once final, its outcome. ``results`` may instead live in the blob store."""

    id: str = Field(pattern=TASK_ID_PATTERN)
    object: str
    kind: str = Field(pattern=_TASK_KIND_PATTERN)
    account_id: str
    model: str
    status: TaskStatus = "pending"
    progress: int = Field(default=0, ge=0, le=100)
    created_at: int
    updated_at: int
    stream: bool = False
    results: list[Any] | None = None
    error: dict[str, Any] | None = None
    callback_url: str | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    result_blob_key: str | None = None
    expires_at: int


class TaskEvent(PortModel):
    """One progress or status event of a task; ``seq`` is the SSE event id (1, 2, 3... per task)."""

    seq: int = Field(ge=1)
    task_id: str
    type: str
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: int


def new_task_id(kind: str, *, now: int | None = None) -> str:
    """``task-<kind>-<unix>-<8 random lowercase alnum>`` (41 bits of randomness per second)."""
    if not re.fullmatch(_TASK_KIND_PATTERN, kind):
        raise ValueError(f"a task kind is lowercase letters and digits, not {kind!r}")
    suffix = "".join(secrets.choice(_TASK_ID_ALPHABET) for _ in range(8))
    return f"task-{kind}-{int(time.time()) if now is None else now}-{suffix}"


def new_task(
    *,
    kind: str,
    account_id: str,
    model: str,
    request: dict[str, Any],
    callback_url: str | None = None,
    stream: bool = False,
    now: int | None = None,
    ttl_sec: int = TASK_TTL_SEC,
) -> Task:
    """A fresh ``pending`` task, ready for ``TaskStore.create_task``."""
    created = int(time.time()) if now is None else now
    return Task(
        id=new_task_id(kind, now=created),
        object=TASK_OBJECTS.get(kind, f"{kind}.task"),
        kind=kind,
        account_id=account_id,
        model=model,
        created_at=created,
        updated_at=created,
        stream=stream,
        callback_url=callback_url,
        request=request,
        expires_at=created + ttl_sec,
    )


class TaskStore(Protocol):
    """Tasks and their event streams (SQLite locally, DynamoDB with TTL in the cloud).

    A task past its ``expires_at`` is gone: reads return None and updates raise ``NotFoundError``,
    whether or not the backend has deleted it yet. Results larger than ~300 KB belong in the blob
    store (``result_blob_key``): a DynamoDB item holds at most 400 KB.
    """

    def create_task(self, task: Task) -> Task:
        """Store a new task. Raise ``IdempotencyConflictError`` when its id is taken."""
        ...

    def get_task(self, task_id: str) -> Task | None: ...

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
        """Change the given fields (None leaves one as it is) and return the updated task.

        Conditional on the status rules (``TASK_TRANSITIONS``): pending → processing → completed |
        failed, checked and written atomically. A final task is never changed again. Reaching
        ``completed`` sets ``progress`` to 100 unless given.

        Raises
        ------
        NotFoundError
            No such task (or it expired).
        TaskTransitionError
            The move is not allowed from the task's current status.
        """
        ...

    def append_event(self, task_id: str, *, type: str, data: dict[str, Any]) -> TaskEvent:
        """Add an event with the next ``seq`` of this task (no gaps, no duplicates, even concurrently).

        An event with ``seq`` n is visible only once every event before it is, so a reader resuming
        after n never misses one. Raise ``NotFoundError`` for an unknown task.
        """
        ...

    def list_events(self, task_id: str, *, after_seq: int = 0, limit: int = 1000) -> list[TaskEvent]:
        """Events with ``seq > after_seq``, oldest first (``Last-Event-ID`` resumption)."""
        ...

    def delete_task(self, task_id: str) -> None:
        """Remove the task, its events and its step markers. Deleting a missing task is not an error."""
        ...


class StepMarkers(Protocol):
    """Per-(task, step) markers that make workflow steps idempotent under retry.

    A marker is not a lock: ``claim_step`` tells an attempt whether it is the first, and the first
    ``record_step_output`` wins, so a retried or duplicated step sees the output already recorded
    instead of running twice. Markers expire with ``TASK_TTL_SEC`` and go with ``delete_task``.
    """

    def claim_step(self, task_id: str, step: str) -> bool:
        """Note that an attempt at ``step`` started. True for the first attempt, False for any later one
        (a retry after a failure or timeout, or a concurrent duplicate)."""
        ...

    def record_step_output(self, task_id: str, step: str, output: dict[str, Any]) -> dict[str, Any]:
        """Record the step's output unless one is recorded already; return the output that is recorded."""
        ...

    def get_step_output(self, task_id: str, step: str) -> dict[str, Any] | None: ...


IdempotencyStatus = Literal["in_progress", "completed"]


class IdempotentResponse(PortModel):
    """The first response to an idempotent request, replayed to its duplicates (API Gateway v2 shape)."""

    status_code: int
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = ""
    is_base64_encoded: bool = False


class IdempotencyRecord(PortModel):
    account_id: str
    key: str
    request_hash: str
    status: IdempotencyStatus
    response: IdempotentResponse | None = None
    created_at: int
    expires_at: int


class IdempotencyStore(Protocol):
    """``Idempotency-Key`` bookkeeping: one record per (account, key), alive for ``ttl_sec``.

    The DynamoDB layout follows Powertools Idempotency's (``id``, ``expiration``, ``status``,
    ``data``, ``validation``, ``in_progress_expiration``).
    """

    def begin(
        self, account_id: str, key: str, request_hash: str, ttl_sec: int = IDEMPOTENCY_TTL_SEC, *, lease_sec: int = 900
    ) -> IdempotencyRecord:
        """Start a request under ``key``, or find the response it already got.

        Returns an ``in_progress`` record when this caller now owns the key (run the request, then
        ``complete`` or ``release``), or the ``completed`` record with the stored response when the same
        request already finished (replay it, charge nothing). An in-progress record whose owner has
        not finished within ``lease_sec`` (it crashed) is taken over; pass the time the request may
        still run, as Powertools does with the Lambda's remaining time.

        Raises
        ------
        IdempotencyConflictError
            With ``retry_after=1`` when the same request is in flight; without it when the key was
            used for a different request (another ``request_hash``).
        """
        ...

    def complete(self, account_id: str, key: str, response: IdempotentResponse) -> IdempotencyRecord:
        """Store the response of the in-progress request; a second call keeps the first response.

        Raise ``NotFoundError`` when there is no live record (never begun, released, or expired).
        """
        ...

    def release(self, account_id: str, key: str) -> None:
        """Forget an in-progress record (the request failed), so a retry can run. Completed records stay."""
        ...


class JobStarter(Protocol):
    """Starts the async workflow for a task (Step Functions in the cloud, an in-process runner locally)."""

    def start(self, task_id: str, state: dict[str, Any]) -> None:
        """Start the workflow named ``task_id`` with ``state``; starting the same name twice starts it once."""
        ...
