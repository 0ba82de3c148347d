"""Ports: what the services need from storage, as Protocols.

Each port has a local adapter (SQLite, files) and a cloud adapter (DynamoDB, S3); both pass the
same contract suite in ``tests/contract``. Services receive ports as arguments and never know which
adapter they hold.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, Field

LedgerKind = Literal["debit", "refund", "topup"]


class Account(BaseModel):
    id: str
    name: str
    balance_micro_usd: int
    audio_enabled: bool = True
    created_at: int


class ApiKey(BaseModel):
    """A stored key: never the secret, only its SHA-256 and a hint."""

    id: str
    account_id: str
    name: str
    key_hash: str
    hint: str
    created_at: int
    revoked: bool = False


class Principal(BaseModel):
    """Who is calling, as the authorizer resolved it. Carries ids only, never the key."""

    account_id: str
    key_id: str


class Charge(BaseModel):
    """What a request is about to be charged for."""

    request_id: str
    account_id: str
    amount_micro_usd: int = Field(ge=0)
    model: str
    duration_ms: int = Field(ge=0)
    billable_minutes: int = Field(ge=0)
    description: str = ""


class LedgerEntry(BaseModel):
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


class BlobStore(Protocol):
    """Audio and results by key (files locally, S3 in the cloud)."""

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None: ...

    def get(self, key: str) -> bytes:
        """Raise ``NotFoundError`` for a missing key."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Deleting a missing key is not an error."""
        ...
