"""The ``IdempotencyStore`` contract: the ``Idempotency-Key`` semantics every POST relies on, on SQLite
and on DynamoDB (Powertools Idempotency's layout)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import pytest

from earshot.errors import IdempotencyConflictError, NotFoundError
from earshot.ports import IDEMPOTENCY_TTL_SEC, IdempotencyRecord, IdempotencyStore, IdempotentResponse


class FakeClock(Protocol):
    """The ``clock`` fixture: wall-clock time the test can move forward."""

    def __call__(self) -> float: ...

    def advance(self, seconds: float) -> None: ...


_RESPONSE = IdempotentResponse(
    status_code=202,
    headers={"content-type": "application/json", "x-earshot-cost-usd": "0.006000"},
    body='{"id": "task-llm-1776874565-yq3szvcu", "status": "pending"}',
)


def test_the_first_request_owns_the_key(idempotency_store: IdempotencyStore, clock: FakeClock) -> None:
    before = clock()
    record = idempotency_store.begin("acct_1", "key-1", "hash-a")
    after = clock()

    assert (record.account_id, record.key, record.request_hash) == ("acct_1", "key-1", "hash-a")
    assert record.status == "in_progress" and record.response is None
    assert record.expires_at == record.created_at + IDEMPOTENCY_TTL_SEC
    # Whole seconds taken from the store's clock during the call (a fixed tolerance failed on a loaded machine).
    assert int(before) <= record.created_at <= after


def test_a_duplicate_in_flight_is_told_to_retry(idempotency_store: IdempotencyStore) -> None:
    idempotency_store.begin("acct_1", "key-1", "hash-a")

    with pytest.raises(IdempotencyConflictError) as raised:
        idempotency_store.begin("acct_1", "key-1", "hash-a")

    assert raised.value.retry_after == 1 and raised.value.status == 409


def test_the_same_key_for_another_request_is_a_conflict_without_retry(idempotency_store: IdempotencyStore) -> None:
    idempotency_store.begin("acct_1", "key-1", "hash-a")

    with pytest.raises(IdempotencyConflictError) as in_flight:
        idempotency_store.begin("acct_1", "key-1", "hash-b")
    idempotency_store.complete("acct_1", "key-1", _RESPONSE)
    with pytest.raises(IdempotencyConflictError) as after:
        idempotency_store.begin("acct_1", "key-1", "hash-b")

    assert in_flight.value.retry_after is None and after.value.retry_after is None


def test_a_completed_request_is_replayed_with_its_response(idempotency_store: IdempotencyStore) -> None:
    idempotency_store.begin("acct_1", "key-1", "hash-a")
    completed = idempotency_store.complete("acct_1", "key-1", _RESPONSE)

    replay = idempotency_store.begin("acct_1", "key-1", "hash-a")
    again = idempotency_store.begin("acct_1", "key-1", "hash-a")

    assert completed.status == "completed" and completed.response == _RESPONSE
    assert replay == again == completed
    assert replay.response is not None
    assert (replay.response.status_code, replay.response.headers, replay.response.body) == (
        202,
        _RESPONSE.headers,
        _RESPONSE.body,
    )


def test_completing_twice_keeps_the_first_response(idempotency_store: IdempotencyStore) -> None:
    idempotency_store.begin("acct_1", "key-1", "hash-a")
    idempotency_store.complete("acct_1", "key-1", _RESPONSE)

    second = idempotency_store.complete("acct_1", "key-1", IdempotentResponse(status_code=500, body="late"))

    assert second.response == _RESPONSE


def test_completing_a_key_never_begun_is_not_found(idempotency_store: IdempotencyStore) -> None:
    with pytest.raises(NotFoundError):
        idempotency_store.complete("acct_1", "key-1", _RESPONSE)


def test_a_released_key_can_be_tried_again(idempotency_store: IdempotencyStore) -> None:
    idempotency_store.begin("acct_1", "key-1", "hash-a")

    idempotency_store.release("acct_1", "key-1")
    retry = idempotency_store.begin("acct_1", "key-1", "hash-a")

    assert retry.status == "in_progress"
    idempotency_store.release("acct_1", "key-1")
    with pytest.raises(NotFoundError):
        idempotency_store.complete("acct_1", "key-1", _RESPONSE)


def test_releasing_a_completed_key_keeps_its_response(idempotency_store: IdempotencyStore) -> None:
    idempotency_store.begin("acct_1", "key-1", "hash-a")
    idempotency_store.complete("acct_1", "key-1", _RESPONSE)

    idempotency_store.release("acct_1", "key-1")
    idempotency_store.release("acct_1", "never-used")

    assert idempotency_store.begin("acct_1", "key-1", "hash-a").response == _RESPONSE


def test_keys_belong_to_their_account(idempotency_store: IdempotencyStore) -> None:
    idempotency_store.begin("acct_1", "key-1", "hash-a")
    idempotency_store.complete("acct_1", "key-1", _RESPONSE)

    other = idempotency_store.begin("acct_2", "key-1", "hash-b")

    assert other.status == "in_progress" and other.account_id == "acct_2"


def test_a_key_is_free_again_after_24_hours(idempotency_store: IdempotencyStore, clock: FakeClock) -> None:
    idempotency_store.begin("acct_1", "key-1", "hash-a")
    idempotency_store.complete("acct_1", "key-1", _RESPONSE)

    clock.advance(IDEMPOTENCY_TTL_SEC - 60)
    assert idempotency_store.begin("acct_1", "key-1", "hash-a").status == "completed"
    clock.advance(120)
    fresh = idempotency_store.begin("acct_1", "key-1", "hash-b")

    assert fresh.status == "in_progress" and fresh.request_hash == "hash-b"


def test_an_abandoned_request_is_taken_over_after_its_lease(
    idempotency_store: IdempotencyStore, clock: FakeClock
) -> None:
    idempotency_store.begin("acct_1", "key-1", "hash-a", lease_sec=30)
    clock.advance(10)
    with pytest.raises(IdempotencyConflictError):
        idempotency_store.begin("acct_1", "key-1", "hash-a")

    clock.advance(25)
    taken_over = idempotency_store.begin("acct_1", "key-1", "hash-a")

    assert taken_over.status == "in_progress"
    assert idempotency_store.complete("acct_1", "key-1", _RESPONSE).response == _RESPONSE


def test_twenty_concurrent_duplicates_have_exactly_one_winner(idempotency_store: IdempotencyStore) -> None:
    start = threading.Barrier(20)

    def attempt(_: int) -> IdempotencyRecord | IdempotencyConflictError:
        start.wait()
        try:
            return idempotency_store.begin("acct_1", "key-1", "hash-a")
        except IdempotencyConflictError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(attempt, range(20)))

    winners = [outcome for outcome in outcomes if isinstance(outcome, IdempotencyRecord)]
    conflicts = [outcome for outcome in outcomes if isinstance(outcome, IdempotencyConflictError)]
    assert len(winners) == 1 and winners[0].status == "in_progress"
    assert len(conflicts) == 19 and all(conflict.retry_after == 1 for conflict in conflicts)
