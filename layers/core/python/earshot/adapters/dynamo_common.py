"""Plumbing shared by the DynamoDB adapters (``dynamo_store``, ``dynamo_tasks``).

AttributeValue builders, consistent reads, paged queries, batched deletes, jittered backoff, and
what a ``ClientError`` says (its code, the cancellation reasons of a transaction, the item a failed
conditional write saw). Table layouts live in ``dynamo_layout``; the rules live in the adapters.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from earshot.adapters.dynamo_layout import Index
from earshot.errors import RateLimitedError

# boto3 ships no type hints (mypy-boto3-dynamodb would add them); the client is a low-level
# ``boto3.client("dynamodb")`` and items are DynamoDB AttributeValue maps.
DynamoDBClient = Any
Item = dict[str, dict[str, Any]]

# Enough for dozens of concurrent writers on one item; beyond that the caller is told to retry.
MAX_ATTEMPTS = 20
_BACKOFF_BASE_SEC = 0.005
_BACKOFF_CAP_SEC = 0.2
_BATCH_WRITE_MAX = 25  # BatchWriteItem's own limit


def s(value: str) -> dict[str, Any]:
    """A string (``S``) AttributeValue."""
    return {"S": value}


def n(value: int) -> dict[str, Any]:
    """A number (``N``) AttributeValue; always an integer here, so no float or Decimal is stored."""
    return {"N": str(int(value))}


def error_code(exc: ClientError) -> str:
    """The service's error code (``ConditionalCheckFailedException``...), or ``""``."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def cancellation_reasons(exc: ClientError) -> list[dict[str, Any]]:
    """Why each item of a cancelled ``TransactWriteItems`` failed, in order (``[{}, {}]`` when not said)."""
    reasons: list[dict[str, Any]] = exc.response.get("CancellationReasons") or [{}, {}]
    return reasons


def old_item(exc: ClientError) -> Item | None:
    """The item a failed conditional write saw (``ReturnValuesOnConditionCheckFailure=ALL_OLD``)."""
    item: Item | None = exc.response.get("Item")
    return item


def backoff(attempt: int) -> None:
    """Sleep before retry ``attempt`` (from 0): full jitter, exponential, capped."""
    time.sleep(random.uniform(0, min(_BACKOFF_CAP_SEC, _BACKOFF_BASE_SEC * 2**attempt)))


def get_item(client: DynamoDBClient, table: str, key: Item) -> Item | None:
    """The item under ``key``, read consistently, or ``None``."""
    item: Item | None = client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
    return item


def query(client: DynamoDBClient, **kwargs: Any) -> Iterator[Item]:
    """Every item of a Query, following pages until ``Limit`` items or the end."""
    wanted: int | None = kwargs.get("Limit")
    while True:
        response = client.query(**kwargs)
        items: list[Item] = response.get("Items", [])
        yield from items
        if wanted is not None:
            wanted -= len(items)
            if wanted <= 0:
                return
            kwargs["Limit"] = wanted
        if "LastEvaluatedKey" not in response:
            return
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def delete_all(client: DynamoDBClient, table: str, keys: list[Item], *, what: str) -> None:
    """Delete every item under ``keys``, in batches, retrying what DynamoDB leaves unprocessed.

    Raises
    ------
    RateLimitedError
        Some items were still unprocessed after ``MAX_ATTEMPTS`` tries; ``what`` names them in the message.
    """
    for start in range(0, len(keys), _BATCH_WRITE_MAX):
        requests: dict[str, Any] = {
            table: [{"DeleteRequest": {"Key": key}} for key in keys[start : start + _BATCH_WRITE_MAX]]
        }
        for attempt in range(MAX_ATTEMPTS):
            unprocessed = client.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
            if not unprocessed:
                break
            requests = unprocessed
            backoff(attempt)
        else:
            raise RateLimitedError(f"could not delete every item of {what}; retry shortly", retry_after=1)


def query_flagged(
    client: DynamoDBClient, table: str, index: Index, *, flag: str, before: int, limit: int
) -> Iterator[Item]:
    """Items of a sparse index (partition: a flag only flagged items carry; sort: a number), sort key below
    ``before``, in ascending order, at most ``limit``: the open holds, the unfinished tasks."""
    if limit <= 0:
        return iter(())
    assert index.sort is not None
    return query(
        client,
        TableName=table,
        IndexName=index.name,
        KeyConditionExpression=f"{index.partition.name} = :flag AND {index.sort.name} < :before",
        ExpressionAttributeValues={":flag": s(flag), ":before": n(before)},
        Limit=limit,
    )
