"""Ports: what the services need from storage and the workflow, as Protocols.

Each port has a local adapter (SQLite, files, in-process) and a cloud adapter (DynamoDB, S3, Step Functions);
the storage ports pass the same contract suite in ``tests/contract``. Services receive ports as arguments and
never know which adapter they hold. The models they speak in live in ``earshot.models`` (re-exported here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from earshot.models import (
    FINAL_TASK_STATUSES,
    IDEMPOTENCY_TTL_SEC,
    TASK_ID_PATTERN,
    TASK_OBJECTS,
    TASK_TRANSITIONS,
    TASK_TTL_SEC,
    Account,
    ApiKey,
    Charge,
    IdempotencyRecord,
    IdempotencyStatus,
    IdempotentResponse,
    LedgerEntry,
    LedgerKind,
    PortModel,
    PresignedUpload,
    Principal,
    Task,
    TaskEvent,
    TaskStatus,
    new_task,
    new_task_id,
)

__all__ = [
    "FINAL_TASK_STATUSES",
    "IDEMPOTENCY_TTL_SEC",
    "TASK_ID_PATTERN",
    "TASK_OBJECTS",
    "TASK_TRANSITIONS",
    "TASK_TTL_SEC",
    "Account",
    "AccountStore",
    "ApiKey",
    "BlobStore",
    "Charge",
    "IdempotencyRecord",
    "IdempotencyStatus",
    "IdempotencyStore",
    "IdempotentResponse",
    "JobStarter",
    "LedgerEntry",
    "LedgerKind",
    "PortModel",
    "PresignedUpload",
    "Principal",
    "RateLimiter",
    "StepMarkers",
    "Task",
    "TaskEvent",
    "TaskStatus",
    "TaskStore",
    "new_task",
    "new_task_id",
]


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
        """Give back the debit made under ``request_id``, once, closing its hold. None when there was no debit."""
        ...

    def capture(self, request_id: str) -> None:
        """The work paid for under ``request_id`` was delivered: its debit is final (its hold closes).

        Every debit opens a hold; a hold is closed by ``capture`` or by ``refund``. Capturing a closed
        hold, or a request with no debit, does nothing.
        """
        ...

    def open_holds(self, *, created_before: int, limit: int = 100) -> list[LedgerEntry]:
        """Debits whose hold is still open, made before ``created_before`` (unix seconds), oldest first.

        What crash recovery reads: work that was paid for and neither delivered nor refunded.
        """
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

        Conditional on the status rules (``TASK_TRANSITIONS``): pending → processing → completed, and
        failed from pending or processing, checked and written atomically. A final task is never changed again. Reaching
        ``completed`` sets ``progress`` to 100 unless given.

        Raises
        ------
        NotFoundError
            No such task (or it expired).
        TaskTransitionError
            The move is not allowed from the task's current status.
        """
        ...

    def list_unfinished(self, *, updated_before: int, limit: int = 100) -> list[Task]:
        """Live tasks still ``pending`` or ``processing`` whose last change is older than ``updated_before``.

        What crash recovery reads (the cloud adapter scans: run it from a schedule, not a request).
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
