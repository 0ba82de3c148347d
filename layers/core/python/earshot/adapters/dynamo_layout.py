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
            "AttributeDefinitions": [{"AttributeName": k.name, "AttributeType": k.type} for k in sorted(attributes, key=lambda k: k.name)],
        }
        if gsis:
            kwargs["GlobalSecondaryIndexes"] = gsis
        return kwargs


# Accounts: the balance lives here, changed only by conditional updates inside transactions.
ACCOUNTS = TableSpec("accounts", partition=Key("account_id"))

# API keys by SHA-256 of the secret (the authorizer's lookup); by id for the operator's commands.
API_KEYS = TableSpec("api_keys", partition=Key("key_hash"), indexes=(Index("by_key_id", Key("key_id")),))

# Ledger: one item per money movement, keyed by "<request_id>#<kind>" so a retried debit, refund or
# top-up cannot land twice (conditional put in the same transaction as the balance update).
# Listing an account's entries newest first uses the by_account index (entry ids sort by time).
LEDGER = TableSpec(
    "ledger",
    partition=Key("request_key"),
    indexes=(Index("by_account", Key("account_id"), Key("entry_id")),),
)

TABLES: tuple[TableSpec, ...] = (ACCOUNTS, API_KEYS, LEDGER)
