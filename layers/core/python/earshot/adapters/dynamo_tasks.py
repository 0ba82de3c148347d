"""``TaskStore``, ``StepMarkers`` and ``IdempotencyStore`` on DynamoDB (tables laid out in ``dynamo_layout``).

Every state change is one conditional write, so the database, not this process, enforces the rules:

- a task's status moves with ``UpdateItem`` conditioned on the statuses it may move from
  (``TASK_TRANSITIONS``), each field its own attribute so no read-modify-write can lose an update;
- an event is a ``TransactWriteItems`` of a condition check (the task exists) and a put of the next
  ``seq`` (``attribute_not_exists``): two writers racing for a seq cannot both win, and the loser
  retries with the one after. A seq is only written after the one before it, so readers never skip;
- a step output is recorded only where none is (first writer wins, the others read the winner's);
- an idempotency record is claimed with Powertools Idempotency's own condition (absent, expired, or
  in progress past its lease) and attribute layout, so Powertools could read the same table.

TTL deletion is lazy (up to days late), so every read also checks the expiry itself. JSON documents
(results, error, request, step outputs, stored responses) are stored as strings: they hold floats
that DynamoDB numbers would turn into ``Decimal``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, cast

from botocore.exceptions import ClientError

from earshot.adapters.dynamo_common import (
    MAX_ATTEMPTS,
    DynamoDBClient,
    Item,
    backoff,
    cancellation_reasons,
    delete_all,
    error_code,
    get_item,
    n,
    old_item,
    query,
    query_flagged,
    s,
)
from earshot.adapters.dynamo_layout import IDEMPOTENCY, STEP_MARKERS, TASK_EVENTS, TASKS, UNFINISHED_ATTRIBUTE
from earshot.errors import IdempotencyConflictError, NotFoundError, RateLimitedError, TaskTransitionError
from earshot.ports import (
    FINAL_TASK_STATUSES,
    IDEMPOTENCY_TTL_SEC,
    TASK_TRANSITIONS,
    TASK_TTL_SEC,
    IdempotencyRecord,
    IdempotencyStatus,
    IdempotentResponse,
    Task,
    TaskEvent,
    TaskStatus,
)

Clock = Callable[[], float]

# Powertools Idempotency's status values.
_INPROGRESS = "INPROGRESS"
_COMPLETED = "COMPLETED"
_UNFINISHED = "1"
_STATUS_NAMES: dict[str, IdempotencyStatus] = {_INPROGRESS: "in_progress", _COMPLETED: "completed"}
# Task fields stored as JSON strings; every other field is a plain string, number or boolean attribute.
_JSON_FIELDS = ("results", "error", "request")
_NUMBER_FIELDS = ("progress", "created_at", "updated_at", "expires_at")


class _Tables:
    """What the stores share: the client and the clock."""

    def __init__(self, client: DynamoDBClient, clock: Clock) -> None:
        self._client = client
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())


class DynamoTaskStore(_Tables):
    """Deployed ``TaskStore`` and ``StepMarkers``. Safe to share between threads (boto3 clients are).

    Parameters
    ----------
    client
        A low-level ``boto3`` DynamoDB client.
    tasks_table, events_table, steps_table
        Physical names of the ``TASKS``, ``TASK_EVENTS`` and ``STEP_MARKERS`` tables.
    clock
        Seconds since the epoch; injectable so tests can move time past an expiry.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        *,
        tasks_table: str,
        events_table: str,
        steps_table: str,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(client, clock)
        self._tasks = tasks_table
        self._events = events_table
        self._steps = steps_table

    # -- item <-> model -------------------------------------------------------------------------
    @staticmethod
    def _task_item(task: Task) -> Item:
        item: Item = {TASKS.partition.name: s(task.id)}
        for name, value in task.model_dump().items():
            if name == "id" or value is None:
                continue
            if name in _JSON_FIELDS:
                item[name] = s(json.dumps(value))
            elif name in _NUMBER_FIELDS:
                item[name] = n(value)
            elif isinstance(value, bool):
                item[name] = {"BOOL": value}
            else:
                item[name] = s(str(value))
        if task.status not in FINAL_TASK_STATUSES:
            item[UNFINISHED_ATTRIBUTE] = s(_UNFINISHED)
        return item

    @staticmethod
    def _task(item: Item) -> Task:
        fields: dict[str, Any] = {"id": item[TASKS.partition.name]["S"]}
        for name, value in item.items():
            if name in (TASKS.partition.name, UNFINISHED_ATTRIBUTE):
                continue
            if name in _JSON_FIELDS:
                fields[name] = json.loads(value["S"])
            elif name in _NUMBER_FIELDS:
                fields[name] = int(value["N"])
            elif "BOOL" in value:
                fields[name] = bool(value["BOOL"])
            elif "S" in value:
                fields[name] = value["S"]
        return Task.model_validate(fields)

    def _live_task(self, task_id: str) -> Task | None:
        item = get_item(self._client, self._tasks, {TASKS.partition.name: s(task_id)})
        if item is None or int(item["expires_at"]["N"]) <= self._now():
            return None
        return self._task(item)

    # -- tasks ----------------------------------------------------------------------------------
    def create_task(self, task: Task) -> Task:
        try:
            self._client.put_item(
                TableName=self._tasks,
                Item=self._task_item(task),
                # A task id still in the table after its expiry (TTL is lazy) is free again.
                ConditionExpression="attribute_not_exists(#id) OR expires_at <= :now",
                ExpressionAttributeNames={"#id": TASKS.partition.name},
                ExpressionAttributeValues={":now": n(self._now())},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise IdempotencyConflictError(f"task {task.id} already exists") from exc
            raise
        return task

    def get_task(self, task_id: str) -> Task | None:
        return self._live_task(task_id)

    def list_unfinished(self, *, updated_before: int, limit: int = 100) -> list[Task]:
        """From the sparse ``unfinished`` index (eventually consistent), oldest change first."""
        items = query_flagged(
            self._client, self._tasks, TASKS.indexes[0], flag=_UNFINISHED, before=updated_before, limit=limit
        )
        now = self._now()
        return [task for task in (self._task(item) for item in items) if task.expires_at > now]

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
        if status is None:  # no move: any state that may stay where it is (the non-final ones)
            allowed_from = [state for state, targets in TASK_TRANSITIONS.items() if state in targets]
        else:
            allowed_from = [state for state, targets in TASK_TRANSITIONS.items() if status in targets]
        if progress is None and status == "completed":
            progress = 100
        if progress is not None and not 0 <= progress <= 100:
            raise ValueError("progress is 0 to 100")
        names = {"#id": TASKS.partition.name, "#status": "status"}
        values: Item = {":now": n(self._now())}
        sets = ["updated_at = :now"]
        for name, value in (
            ("status", s(status) if status else None),
            ("progress", n(progress) if progress is not None else None),
            ("results", s(json.dumps(results)) if results is not None else None),
            ("error", s(json.dumps(error)) if error is not None else None),
            ("result_blob_key", s(result_blob_key) if result_blob_key is not None else None),
        ):
            if value is not None:
                names[f"#{name}"] = name
                values[f":{name}"] = value
                sets.append(f"#{name} = :{name}")
        placeholders = []
        for index, state in enumerate(allowed_from):
            values[f":from{index}"] = s(state)
            placeholders.append(f":from{index}")
        update = "SET " + ", ".join(sets)
        if status in FINAL_TASK_STATUSES:
            update += f" REMOVE {UNFINISHED_ATTRIBUTE}"
        try:
            response = self._client.update_item(
                TableName=self._tasks,
                Key={TASKS.partition.name: s(task_id)},
                UpdateExpression=update,
                ConditionExpression=(
                    f"attribute_exists(#id) AND expires_at > :now AND #status IN ({', '.join(placeholders)})"
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = old_item(exc) or get_item(self._client, self._tasks, {TASKS.partition.name: s(task_id)})
            if old is None or int(old["expires_at"]["N"]) <= self._now():
                raise NotFoundError(f"no task {task_id}") from exc
            current = old["status"]["S"]
            raise TaskTransitionError(f"task {task_id} cannot move from {current} to {status or current}") from exc
        return self._task(response["Attributes"])

    def append_event(self, task_id: str, *, type: str, data: dict[str, Any]) -> TaskEvent:
        task = self._live_task(task_id)
        if task is None:
            raise NotFoundError(f"no task {task_id}")
        seq_name = TASK_EVENTS.sort.name if TASK_EVENTS.sort else "seq"
        for attempt in range(MAX_ATTEMPTS):
            event = TaskEvent(
                seq=self._last_seq(task_id) + 1, task_id=task_id, type=type, data=data, created_at=self._now()
            )
            try:
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "ConditionCheck": {
                                "TableName": self._tasks,
                                "Key": {TASKS.partition.name: s(task_id)},
                                "ConditionExpression": "attribute_exists(#id) AND expires_at > :now",
                                "ExpressionAttributeNames": {"#id": TASKS.partition.name},
                                "ExpressionAttributeValues": {":now": n(event.created_at)},
                            }
                        },
                        {
                            "Put": {
                                "TableName": self._events,
                                "Item": {
                                    TASK_EVENTS.partition.name: s(task_id),
                                    seq_name: n(event.seq),
                                    "type": s(type),
                                    "data": s(json.dumps(data)),
                                    "created_at": n(event.created_at),
                                    "expires_at": n(task.expires_at),
                                },
                                "ConditionExpression": "attribute_not_exists(#seq)",
                                "ExpressionAttributeNames": {"#seq": seq_name},
                            }
                        },
                    ]
                )
                return event
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                reasons = cancellation_reasons(exc)
                if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                    raise NotFoundError(f"no task {task_id}") from exc
            backoff(attempt)  # another writer took this seq (or the transaction conflicted): take the next
        raise RateLimitedError("too many concurrent events on this task; retry shortly", retry_after=1)

    def _last_seq(self, task_id: str) -> int:
        seq_name = TASK_EVENTS.sort.name if TASK_EVENTS.sort else "seq"
        response = self._client.query(
            TableName=self._events,
            KeyConditionExpression="#task = :task",
            ExpressionAttributeNames={"#task": TASK_EVENTS.partition.name, "#seq": seq_name},
            ExpressionAttributeValues={":task": s(task_id)},
            ProjectionExpression="#seq",
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items: list[Item] = response.get("Items", [])
        return int(items[0][seq_name]["N"]) if items else 0

    def list_events(self, task_id: str, *, after_seq: int = 0, limit: int = 1000) -> list[TaskEvent]:
        if limit <= 0:
            return []
        seq_name = TASK_EVENTS.sort.name if TASK_EVENTS.sort else "seq"
        now = self._now()
        items = query(
            self._client,
            TableName=self._events,
            KeyConditionExpression="#task = :task AND #seq > :after",
            ExpressionAttributeNames={"#task": TASK_EVENTS.partition.name, "#seq": seq_name},
            ExpressionAttributeValues={":task": s(task_id), ":after": n(after_seq)},
            ConsistentRead=True,
            Limit=limit,
        )
        return [
            TaskEvent(
                seq=int(item[seq_name]["N"]),
                task_id=task_id,
                type=item["type"]["S"],
                data=json.loads(item["data"]["S"]),
                created_at=int(item["created_at"]["N"]),
            )
            for item in items
            if int(item["expires_at"]["N"]) > now
        ]

    def delete_task(self, task_id: str) -> None:
        # The task first: once it is gone no new event can be appended (the transaction checks it).
        self._client.delete_item(TableName=self._tasks, Key={TASKS.partition.name: s(task_id)})
        for table, spec in ((self._events, TASK_EVENTS), (self._steps, STEP_MARKERS)):
            assert spec.sort is not None
            names = {"#pk": spec.partition.name, "#sk": spec.sort.name}
            keys = [
                {spec.partition.name: item[spec.partition.name], spec.sort.name: item[spec.sort.name]}
                for item in query(
                    self._client,
                    TableName=table,
                    KeyConditionExpression="#pk = :pk",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={":pk": s(task_id)},
                    ProjectionExpression="#pk, #sk",
                    ConsistentRead=True,
                )
            ]
            delete_all(self._client, table, keys, what="the task")

    # -- step markers ---------------------------------------------------------------------------
    @staticmethod
    def _marker_key(task_id: str, step: str) -> Item:
        assert STEP_MARKERS.sort is not None
        return {STEP_MARKERS.partition.name: s(task_id), STEP_MARKERS.sort.name: s(step)}

    def claim_step(self, task_id: str, step: str) -> bool:
        now = self._now()
        try:
            response = self._client.update_item(
                TableName=self._steps,
                Key=self._marker_key(task_id, step),
                UpdateExpression="ADD attempts :one SET expires_at = if_not_exists(expires_at, :expires)",
                ConditionExpression="attribute_not_exists(#pk) OR expires_at > :now",
                ExpressionAttributeNames={"#pk": STEP_MARKERS.partition.name},
                ExpressionAttributeValues={":one": n(1), ":expires": n(now + TASK_TTL_SEC), ":now": n(now)},
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            # An expired marker the TTL has not removed yet: start afresh, as if it were gone.
            self._client.put_item(
                TableName=self._steps,
                Item={**self._marker_key(task_id, step), "attempts": n(1), "expires_at": n(now + TASK_TTL_SEC)},
            )
            return True
        return not response.get("Attributes")  # no marker before this one: the first attempt

    def record_step_output(self, task_id: str, step: str, output: dict[str, Any]) -> dict[str, Any]:
        now = self._now()
        text = json.dumps(output)
        try:
            self._client.update_item(
                TableName=self._steps,
                Key=self._marker_key(task_id, step),
                UpdateExpression=(
                    "SET #output = :output, expires_at = :expires, attempts = if_not_exists(attempts, :zero)"
                ),
                ConditionExpression="attribute_not_exists(#output) OR expires_at <= :now",
                ExpressionAttributeNames={"#output": "output"},
                ExpressionAttributeValues={
                    ":output": s(text),
                    ":expires": n(now + TASK_TTL_SEC),
                    ":zero": n(0),
                    ":now": n(now),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = old_item(exc) or get_item(self._client, self._steps, self._marker_key(task_id, step))
            if old is None or "output" not in old:  # pragma: no cover - the condition says otherwise
                raise
            text = old["output"]["S"]
        return cast(dict[str, Any], json.loads(text))

    def get_step_output(self, task_id: str, step: str) -> dict[str, Any] | None:
        item = get_item(self._client, self._steps, self._marker_key(task_id, step))
        if item is None or "output" not in item or int(item["expires_at"]["N"]) <= self._now():
            return None
        return cast(dict[str, Any], json.loads(item["output"]["S"]))


class DynamoIdempotencyStore(_Tables):
    """Deployed ``IdempotencyStore``, on Powertools Idempotency's DynamoDB item layout.

    Parameters
    ----------
    client
        A low-level ``boto3`` DynamoDB client.
    table
        Physical name of the ``IDEMPOTENCY`` table.
    clock
        Seconds since the epoch; injectable so tests can move time past a lease or an expiry.
    """

    def __init__(self, client: DynamoDBClient, *, table: str, clock: Clock = time.time) -> None:
        super().__init__(client, clock)
        self._table = table

    @staticmethod
    def _key(account_id: str, key: str) -> Item:
        return {IDEMPOTENCY.partition.name: s(f"{account_id}#{key}")}

    @staticmethod
    def _record(item: Item) -> IdempotencyRecord:
        response = IdempotentResponse.model_validate_json(item["data"]["S"]) if "data" in item else None
        return IdempotencyRecord(
            account_id=item["account_id"]["S"],
            key=item["idempotency_key"]["S"],
            request_hash=item["validation"]["S"],
            status=_STATUS_NAMES[item["status"]["S"]],
            response=response,
            created_at=int(item["created_at"]["N"]),
            expires_at=int(item[IDEMPOTENCY.ttl_attribute or "expiration"]["N"]),
        )

    def begin(
        self, account_id: str, key: str, request_hash: str, ttl_sec: int = IDEMPOTENCY_TTL_SEC, *, lease_sec: int = 900
    ) -> IdempotencyRecord:
        expiry = IDEMPOTENCY.ttl_attribute or "expiration"
        for attempt in range(MAX_ATTEMPTS):
            now = self._clock()
            record = IdempotencyRecord(
                account_id=account_id,
                key=key,
                request_hash=request_hash,
                status="in_progress",
                created_at=int(now),
                expires_at=int(now) + ttl_sec,
            )
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item={
                        **self._key(account_id, key),
                        "account_id": s(account_id),
                        "idempotency_key": s(key),
                        "validation": s(request_hash),
                        "status": s(_INPROGRESS),
                        "created_at": n(record.created_at),
                        expiry: n(record.expires_at),
                        "in_progress_expiration": n(int(now * 1000) + lease_sec * 1000),
                    },
                    # Powertools' condition: absent, expired, or in progress past its owner's lease.
                    ConditionExpression=(
                        "attribute_not_exists(#id) OR #expiry < :now OR (#status = :inprogress"
                        " AND attribute_exists(#lease) AND #lease < :now_ms)"
                    ),
                    ExpressionAttributeNames={
                        "#id": IDEMPOTENCY.partition.name,
                        "#expiry": expiry,
                        "#status": "status",
                        "#lease": "in_progress_expiration",
                    },
                    ExpressionAttributeValues={
                        ":now": n(int(now)),
                        ":now_ms": n(int(now * 1000)),
                        ":inprogress": s(_INPROGRESS),
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return record
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
                old = old_item(exc) or get_item(self._client, self._table, self._key(account_id, key))
            if old is None:
                backoff(attempt)  # released between our write and our read: try again
                continue
            if old["validation"]["S"] != request_hash:
                raise IdempotencyConflictError(
                    "this Idempotency-Key was already used with a different request", param="Idempotency-Key"
                )
            if old["status"]["S"] == _INPROGRESS:
                raise IdempotencyConflictError(
                    "a request with this Idempotency-Key is still in progress; retry shortly",
                    param="Idempotency-Key",
                    retry_after=1,
                )
            return self._record(old)
        raise RateLimitedError("too many concurrent requests with this Idempotency-Key; retry shortly", retry_after=1)

    def complete(self, account_id: str, key: str, response: IdempotentResponse) -> IdempotencyRecord:
        expiry = IDEMPOTENCY.ttl_attribute or "expiration"
        try:
            updated = self._client.update_item(
                TableName=self._table,
                Key=self._key(account_id, key),
                UpdateExpression="SET #status = :completed, #data = :data",
                ConditionExpression="attribute_exists(#id) AND #expiry >= :now AND #status = :inprogress",
                ExpressionAttributeNames={
                    "#id": IDEMPOTENCY.partition.name,
                    "#expiry": expiry,
                    "#status": "status",
                    "#data": "data",
                },
                ExpressionAttributeValues={
                    ":completed": s(_COMPLETED),
                    ":inprogress": s(_INPROGRESS),
                    ":data": s(response.model_dump_json()),
                    ":now": n(self._now()),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = old_item(exc) or get_item(self._client, self._table, self._key(account_id, key))
            if old is None or int(old[expiry]["N"]) < self._now():
                raise NotFoundError(f"no idempotency record for key {key!r}") from exc
            return self._record(old)  # already completed: the first response stays
        return self._record(updated["Attributes"])

    def release(self, account_id: str, key: str) -> None:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=self._key(account_id, key),
                ConditionExpression="#status = :inprogress",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":inprogress": s(_INPROGRESS)},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
