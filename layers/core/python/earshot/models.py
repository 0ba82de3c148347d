"""The domain models the ports speak in: accounts, keys, money, uploads, tasks and idempotency records.

Pydantic models with no behaviour beyond their own shape (and the task id and transition rules).
``earshot.ports`` holds the Protocols that store and move them.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from typing import Any, Literal

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


class PresignedUpload(PortModel):
    """Where and how a client uploads one object itself: a form POST of ``fields`` plus ``file``."""

    url: str
    fields: dict[str, str]
    expires_at: int


# -- tasks, their events, and the idempotency of requests and workflow steps -----------------------
#
# Appended for async tasks (issue 5). ``Any`` is needed for the JSON documents tasks carry.

TaskStatus = Literal["pending", "processing", "completed", "failed"]
FINAL_TASK_STATUSES: frozenset[str] = frozenset({"completed", "failed"})
# The only moves a task makes: pending → processing → completed, and failed from any non-final
# state (a task can fail before it starts processing: an unfetchable URL, a refused charge). Staying
# in a non-final state is allowed (a progress update, or a retried step that sets ``processing`` again).
TASK_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "pending": frozenset({"pending", "processing", "failed"}),
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
