"""``AccountStore`` on DynamoDB: the deployed mode's store (tables laid out in ``dynamo_layout``).

Every balance change is one ``TransactWriteItems``: a conditional update of the account's balance
and a conditional put of its ledger item (``<request_id>#<kind>``, ``attribute_not_exists``), so the
money and the entry land together or not at all, and a retried request cannot land twice.

A transaction cannot return the new balance, yet every ledger entry records ``balance_after``
exactly. So balance changes are optimistic: read the balance ``b``, then write ``b + delta`` on the
condition that the balance is still ``b``. When another request got there first, the cancelled
transaction hands back the current balance (``ReturnValuesOnConditionCheckFailure``) and we try
again, a bounded number of times with jittered backoff. The balance condition also carries the
never-below-zero rule, so the database, not this process, guarantees it.

Money is stored as DynamoDB numbers and always read back as ``int``: no float or Decimal leaves here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast, get_args

from botocore.exceptions import ClientError

from earshot.adapters.dynamo_common import (
    MAX_ATTEMPTS,
    DynamoDBClient,
    Item,
    backoff,
    cancellation_reasons,
    error_code,
    get_item,
    n,
    query,
    query_flagged,
    s,
)
from earshot.adapters.dynamo_layout import ACCOUNTS, API_KEYS, LEDGER, OPEN_HOLD, OPEN_HOLD_ATTRIBUTE
from earshot.errors import BillingError, NotFoundError, RateLimitedError
from earshot.keys import new_id, new_sortable_id
from earshot.ports import Account, ApiKey, Charge, LedgerEntry, LedgerKind

_BALANCE = "balance_micro_usd"
_WEBHOOK_SECRET = "webhook_secret"  # absent until the operator asks for one
# Why a transaction item was cancelled, when trying again can help ("None": that item was fine).
_RETRYABLE_REASONS = frozenset(
    {None, "None", "ConditionalCheckFailed", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)


def _get_s(item: Item, name: str) -> str:
    return str(item[name]["S"])


def _get_n(item: Item, name: str) -> int:
    return int(item[name]["N"])


def _get_optional_n(item: Item, name: str) -> int | None:
    return int(item[name]["N"]) if name in item else None


def _get_bool(item: Item, name: str, default: bool) -> bool:
    return bool(item[name]["BOOL"]) if name in item else default


def _request_key(request_id: str, kind: LedgerKind) -> str:
    return f"{request_id}#{kind}"


def _insufficient_balance(amount_micro_usd: int) -> BillingError:
    return BillingError(
        f"insufficient balance: this request costs ${amount_micro_usd / 1_000_000:.6f}; top up and retry"
    )


class DynamoStore:
    """Deployed ``AccountStore``. Safe to share between threads (boto3 clients are).

    Parameters
    ----------
    client
        A low-level ``boto3`` DynamoDB client.
    accounts_table, api_keys_table, ledger_table
        Physical table names (``EARSHOT_ACCOUNTS_TABLE`` and friends), laid out as in ``dynamo_layout``.
    """

    def __init__(self, client: DynamoDBClient, *, accounts_table: str, api_keys_table: str, ledger_table: str) -> None:
        self._client = client
        self._accounts = accounts_table
        self._api_keys = api_keys_table
        self._ledger = ledger_table

    # -- item <-> model -------------------------------------------------------------------------
    @staticmethod
    def _account(item: Item) -> Account:
        return Account(
            id=_get_s(item, ACCOUNTS.partition.name),
            name=_get_s(item, "name"),
            balance_micro_usd=_get_n(item, _BALANCE),
            audio_enabled=_get_bool(item, "audio_enabled", True),
            created_at=_get_n(item, "created_at"),
        )

    @staticmethod
    def _key(item: Item) -> ApiKey:
        return ApiKey(
            id=_get_s(item, "key_id"),
            account_id=_get_s(item, "account_id"),
            name=_get_s(item, "name"),
            key_hash=_get_s(item, API_KEYS.partition.name),
            hint=_get_s(item, "hint"),
            created_at=_get_n(item, "created_at"),
            revoked=_get_bool(item, "revoked", False),
        )

    @staticmethod
    def _entry(item: Item) -> LedgerEntry:
        kind = _get_s(item, "kind")
        if kind not in get_args(LedgerKind):
            raise ValueError(f"ledger item with unknown kind {kind!r}")
        return LedgerEntry(
            id=_get_s(item, "entry_id"),
            account_id=_get_s(item, "account_id"),
            request_id=_get_s(item, "request_id"),
            kind=cast(LedgerKind, kind),
            amount_micro_usd=_get_n(item, "amount_micro_usd"),
            balance_after_micro_usd=_get_n(item, "balance_after_micro_usd"),
            model=_get_s(item, "model") if "model" in item else None,
            duration_ms=_get_optional_n(item, "duration_ms"),
            billable_minutes=_get_optional_n(item, "billable_minutes"),
            description=_get_s(item, "description") if "description" in item else "",
            created_at=_get_n(item, "created_at"),
        )

    @staticmethod
    def _entry_item(entry: LedgerEntry) -> Item:
        item: Item = {
            LEDGER.partition.name: s(_request_key(entry.request_id, entry.kind)),
            "entry_id": s(entry.id),
            "account_id": s(entry.account_id),
            "request_id": s(entry.request_id),
            "kind": s(entry.kind),
            "amount_micro_usd": n(entry.amount_micro_usd),
            "balance_after_micro_usd": n(entry.balance_after_micro_usd),
            "description": s(entry.description),
            "created_at": n(entry.created_at),
        }
        if entry.kind == "debit":
            item[OPEN_HOLD_ATTRIBUTE] = s(OPEN_HOLD)
        if entry.model is not None:
            item["model"] = s(entry.model)
        if entry.duration_ms is not None:
            item["duration_ms"] = n(entry.duration_ms)
        if entry.billable_minutes is not None:
            item["billable_minutes"] = n(entry.billable_minutes)
        return item

    # -- plumbing -------------------------------------------------------------------------------
    def _ledger_entry(self, request_id: str, kind: LedgerKind) -> LedgerEntry | None:
        item = get_item(self._client, self._ledger, {LEDGER.partition.name: s(_request_key(request_id, kind))})
        return self._entry(item) if item else None

    def _balance(self, account_id: str) -> int:
        item = get_item(self._client, self._accounts, {ACCOUNTS.partition.name: s(account_id)})
        if item is None:
            raise NotFoundError(f"no account {account_id}")
        return _get_n(item, _BALANCE)

    def _change_balance(
        self, *, account_id: str, delta: int, make_entry: Callable[[int], LedgerEntry], request_key: str
    ) -> LedgerEntry:
        """Add ``delta`` (negative for a debit) and write the entry ``make_entry(balance_after)``, atomically.

        Returns the entry already stored under ``request_key`` when there is one, charging nothing.
        """
        balance = self._balance(account_id)
        for attempt in range(MAX_ATTEMPTS):
            balance_after = balance + delta
            if balance_after < 0:
                # A retried debit whose first attempt drained the balance is still the same debit.
                if existing := get_item(self._client, self._ledger, {LEDGER.partition.name: s(request_key)}):
                    return self._entry(existing)
                raise _insufficient_balance(-delta)
            entry = make_entry(balance_after)
            condition = f"{_BALANCE} = :expected"
            values = {":expected": n(balance), ":after": n(balance_after)}
            if delta < 0:
                condition += f" AND {_BALANCE} >= :cost"
                values[":cost"] = n(-delta)
            try:
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": self._accounts,
                                "Key": {ACCOUNTS.partition.name: s(account_id)},
                                "UpdateExpression": f"SET {_BALANCE} = :after",
                                "ConditionExpression": condition,
                                "ExpressionAttributeValues": values,
                                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                            }
                        },
                        {
                            "Put": {
                                "TableName": self._ledger,
                                "Item": self._entry_item(entry),
                                "ConditionExpression": f"attribute_not_exists({LEDGER.partition.name})",
                                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                            }
                        },
                    ]
                )
                return entry
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                account_reason, ledger_reason = self._cancellation_reasons(exc)
                if not {account_reason.get("Code"), ledger_reason.get("Code")} <= _RETRYABLE_REASONS:
                    raise
            if ledger_reason.get("Code") == "ConditionalCheckFailed":
                # Already done by an earlier attempt of this request: idempotent, return that entry.
                stored = ledger_reason.get("Item") or get_item(
                    self._client, self._ledger, {LEDGER.partition.name: s(request_key)}
                )
                if stored:
                    return self._entry(stored)
            if account_reason.get("Code") == "ConditionalCheckFailed":
                if "Item" not in account_reason:
                    raise NotFoundError(f"no account {account_id}")
                balance = _get_n(account_reason["Item"], _BALANCE)  # another request moved it; retry from there
            else:
                balance = self._balance(account_id)  # a transaction conflict: re-read
            backoff(attempt)
        raise RateLimitedError("too many concurrent balance changes on this account; retry shortly", retry_after=1)

    @staticmethod
    def _cancellation_reasons(exc: ClientError) -> tuple[dict[str, Any], dict[str, Any]]:
        reasons = cancellation_reasons(exc)
        if len(reasons) != 2:
            raise exc
        return reasons[0], reasons[1]

    # -- accounts and keys ----------------------------------------------------------------------
    def create_account(self, *, name: str, balance_micro_usd: int) -> Account:
        now = int(time.time())
        account = Account(id=new_id("acct"), name=name, balance_micro_usd=balance_micro_usd, created_at=now)
        opening = LedgerEntry(
            id=new_sortable_id("led"),
            account_id=account.id,
            request_id=f"open-{account.id}",
            kind="topup",
            amount_micro_usd=balance_micro_usd,
            balance_after_micro_usd=balance_micro_usd,
            description="opening balance",
            created_at=now,
        )
        self._client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self._accounts,
                        "Item": {
                            ACCOUNTS.partition.name: s(account.id),
                            "name": s(name),
                            _BALANCE: n(balance_micro_usd),
                            "audio_enabled": {"BOOL": True},
                            "created_at": n(now),
                        },
                        "ConditionExpression": f"attribute_not_exists({ACCOUNTS.partition.name})",
                    }
                },
                {
                    "Put": {
                        "TableName": self._ledger,
                        "Item": self._entry_item(opening),
                        "ConditionExpression": f"attribute_not_exists({LEDGER.partition.name})",
                    }
                },
            ]
        )
        return account

    def get_account(self, account_id: str) -> Account | None:
        item = get_item(self._client, self._accounts, {ACCOUNTS.partition.name: s(account_id)})
        return self._account(item) if item else None

    def _set_on_existing(self, table: str, key: Item, attribute: str, value: dict[str, Any], *, missing: str) -> Item:
        """``SET attribute = value`` on an item that must exist (``NotFoundError(missing)`` otherwise); the new item."""
        partition = next(iter(key))
        try:
            response = self._client.update_item(
                TableName=table,
                Key=key,
                UpdateExpression=f"SET {attribute} = :value",
                ConditionExpression=f"attribute_exists({partition})",
                ExpressionAttributeValues={":value": value},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise NotFoundError(missing) from exc
            raise
        item: Item = response["Attributes"]
        return item

    def set_audio_enabled(self, account_id: str, enabled: bool) -> Account:
        key = {ACCOUNTS.partition.name: s(account_id)}
        item = self._set_on_existing(
            self._accounts, key, "audio_enabled", {"BOOL": enabled}, missing=f"no account {account_id}"
        )
        return self._account(item)

    def set_webhook_secret(self, account_id: str, secret: str) -> None:
        key = {ACCOUNTS.partition.name: s(account_id)}
        self._set_on_existing(self._accounts, key, _WEBHOOK_SECRET, s(secret), missing=f"no account {account_id}")

    def get_webhook_secret(self, account_id: str) -> str | None:
        # Consistent, so a rotated secret signs the very next delivery.
        item = get_item(self._client, self._accounts, {ACCOUNTS.partition.name: s(account_id)})
        return _get_s(item, _WEBHOOK_SECRET) if item and _WEBHOOK_SECRET in item else None

    def create_api_key(self, *, account_id: str, name: str, key_hash: str, hint: str) -> ApiKey:
        key = ApiKey(
            id=new_sortable_id("key"),  # keys made within one second still list in the order they were made
            account_id=account_id,
            name=name,
            key_hash=key_hash,
            hint=hint,
            created_at=int(time.time()),
        )
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        # The SQLite store has a foreign key; here the account must exist at write time.
                        "ConditionCheck": {
                            "TableName": self._accounts,
                            "Key": {ACCOUNTS.partition.name: s(account_id)},
                            "ConditionExpression": f"attribute_exists({ACCOUNTS.partition.name})",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._api_keys,
                            "Item": {
                                API_KEYS.partition.name: s(key_hash),
                                "key_id": s(key.id),
                                "account_id": s(account_id),
                                "name": s(name),
                                "hint": s(hint),
                                "created_at": n(key.created_at),
                                "revoked": {"BOOL": False},
                            },
                            "ConditionExpression": f"attribute_not_exists({API_KEYS.partition.name})",
                        }
                    },
                ]
            )
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            account_reason, key_reason = self._cancellation_reasons(exc)
            if account_reason.get("Code") == "ConditionalCheckFailed":
                raise NotFoundError(f"no account {account_id}") from exc
            if key_reason.get("Code") == "ConditionalCheckFailed":
                raise ValueError("an API key with this hash already exists") from exc
            raise
        return key

    def find_api_key(self, key_hash: str) -> ApiKey | None:
        # Consistent, so a revocation takes effect on the very next request.
        item = get_item(self._client, self._api_keys, {API_KEYS.partition.name: s(key_hash)})
        return self._key(item) if item else None

    def _key_hash_of(self, key_id: str) -> str | None:
        index = API_KEYS.indexes[0]
        for item in query(
            self._client,
            TableName=self._api_keys,
            IndexName=index.name,
            KeyConditionExpression=f"{index.partition.name} = :id",
            ExpressionAttributeValues={":id": s(key_id)},
            Limit=1,
        ):
            return _get_s(item, API_KEYS.partition.name)
        return None

    def get_api_key(self, key_id: str) -> ApiKey | None:
        # The index only finds the hash (indexes are eventually consistent); the table read is fresh.
        key_hash = self._key_hash_of(key_id)
        return self.find_api_key(key_hash) if key_hash else None

    def list_api_keys(self) -> list[ApiKey]:
        # An operator command: a scan is fine at the number of keys an account system has.
        keys: list[ApiKey] = []
        kwargs: dict[str, Any] = {"TableName": self._api_keys, "ConsistentRead": True}
        while True:
            response = self._client.scan(**kwargs)
            keys.extend(self._key(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return sorted(keys, key=lambda key: (key.created_at, key.id))

    def revoke_api_key(self, key_id: str) -> ApiKey:
        key_hash = self._key_hash_of(key_id)
        if key_hash is None:
            raise NotFoundError(f"no API key {key_id}")
        key = {API_KEYS.partition.name: s(key_hash)}
        item = self._set_on_existing(self._api_keys, key, "revoked", {"BOOL": True}, missing=f"no API key {key_id}")
        return self._key(item)

    # -- money ----------------------------------------------------------------------------------
    def top_up(self, *, account_id: str, amount_micro_usd: int, request_id: str) -> LedgerEntry:
        if amount_micro_usd <= 0:
            raise ValueError("a top-up must be positive")

        def make_entry(balance_after: int) -> LedgerEntry:
            return LedgerEntry(
                id=new_sortable_id("led"),
                account_id=account_id,
                request_id=request_id,
                kind="topup",
                amount_micro_usd=amount_micro_usd,
                balance_after_micro_usd=balance_after,
                description="top-up",
                created_at=int(time.time()),
            )

        return self._change_balance(
            account_id=account_id,
            delta=amount_micro_usd,
            make_entry=make_entry,
            request_key=_request_key(request_id, "topup"),
        )

    def debit(self, charge: Charge) -> LedgerEntry:
        def make_entry(balance_after: int) -> LedgerEntry:
            return LedgerEntry(
                id=new_sortable_id("led"),
                account_id=charge.account_id,
                request_id=charge.request_id,
                kind="debit",
                amount_micro_usd=-charge.amount_micro_usd,
                balance_after_micro_usd=balance_after,
                model=charge.model,
                duration_ms=charge.duration_ms,
                billable_minutes=charge.billable_minutes,
                description=charge.description,
                created_at=int(time.time()),
            )

        return self._change_balance(
            account_id=charge.account_id,
            delta=-charge.amount_micro_usd,
            make_entry=make_entry,
            request_key=_request_key(charge.request_id, "debit"),
        )

    def refund(self, *, request_id: str, reason: str) -> LedgerEntry | None:
        debit = self._ledger_entry(request_id, "debit")
        if debit is None:
            return None
        amount = -debit.amount_micro_usd

        def make_entry(balance_after: int) -> LedgerEntry:
            return LedgerEntry(
                id=new_sortable_id("led"),
                account_id=debit.account_id,
                request_id=request_id,
                kind="refund",
                amount_micro_usd=amount,
                balance_after_micro_usd=balance_after,
                model=debit.model,
                duration_ms=debit.duration_ms,
                billable_minutes=debit.billable_minutes,
                description=reason,
                created_at=int(time.time()),
            )

        entry = self._change_balance(
            account_id=debit.account_id,
            delta=amount,
            make_entry=make_entry,
            request_key=_request_key(request_id, "refund"),
        )
        self.capture(request_id)  # the hold closes with the refund (again after a crash in between: harmless)
        return entry

    def capture(self, request_id: str) -> None:
        try:
            self._client.update_item(
                TableName=self._ledger,
                Key={LEDGER.partition.name: s(_request_key(request_id, "debit"))},
                UpdateExpression=f"REMOVE {OPEN_HOLD_ATTRIBUTE}",
                ConditionExpression=f"attribute_exists({LEDGER.partition.name})",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    def open_holds(self, *, created_before: int, limit: int = 100) -> list[LedgerEntry]:
        """Oldest first, from the sparse ``open_holds`` index (eventually consistent)."""
        items = query_flagged(
            self._client, self._ledger, LEDGER.indexes[1], flag=OPEN_HOLD, before=created_before, limit=limit
        )
        return [self._entry(item) for item in items]

    def list_ledger(self, account_id: str, *, limit: int = 100, before: str | None = None) -> list[LedgerEntry]:
        """Newest first, from the ``by_account`` index (eventually consistent, as every index read is)."""
        if limit <= 0:
            return []
        index = LEDGER.indexes[0]
        assert index.sort is not None
        condition = f"{index.partition.name} = :account"
        values: Item = {":account": s(account_id)}
        if before is not None:
            condition += f" AND {index.sort.name} < :before"
            values[":before"] = s(before)
        items = query(
            self._client,
            TableName=self._ledger,
            IndexName=index.name,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            Limit=limit,
        )
        return [self._entry(item) for item in items]
