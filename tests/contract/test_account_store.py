"""The ``AccountStore`` contract: what a caller of either adapter (SQLite, DynamoDB) can rely on."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from earshot.adapters.aws import build_aws_ports
from earshot.adapters.sqlite_store import SqliteStore
from earshot.config import Settings
from earshot.errors import BillingError, NotFoundError
from earshot.keys import generate_key, hash_key, key_hint
from earshot.ports import AccountStore, Charge, LedgerEntry


def _charge(account_id: str, amount: int, request_id: str = "req-1") -> Charge:
    return Charge(
        request_id=request_id,
        account_id=account_id,
        amount_micro_usd=amount,
        model="transcribe-embedded",
        duration_ms=61_000,
        billable_minutes=2,
        description="transcription",
    )


def _balance(store: AccountStore, account_id: str) -> int:
    account = store.get_account(account_id)
    assert account is not None
    return account.balance_micro_usd


# -- accounts -----------------------------------------------------------------------------------
def test_new_account_has_its_opening_balance_as_a_topup(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=5_000_000)

    stored = account_store.get_account(account.id)
    assert stored == account
    assert stored.name == "Ada" and stored.audio_enabled is True
    [opening] = account_store.list_ledger(account.id)
    assert (opening.kind, opening.amount_micro_usd, opening.balance_after_micro_usd) == ("topup", 5_000_000, 5_000_000)


def test_unknown_account_is_none(account_store: AccountStore) -> None:
    assert account_store.get_account("acct_missing") is None


def test_audio_can_be_disabled_and_enabled_again(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=0)

    assert account_store.set_audio_enabled(account.id, False).audio_enabled is False
    assert account_store.get_account(account.id).audio_enabled is False  # type: ignore[union-attr]
    assert account_store.set_audio_enabled(account.id, True).audio_enabled is True


def test_setting_audio_on_an_unknown_account_is_not_found(account_store: AccountStore) -> None:
    with pytest.raises(NotFoundError):
        account_store.set_audio_enabled("acct_missing", False)


# -- API keys -----------------------------------------------------------------------------------
def test_a_key_is_found_by_its_hash_and_by_its_id(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=0)
    secret = generate_key()

    key = account_store.create_api_key(
        account_id=account.id, name="laptop", key_hash=hash_key(secret), hint=key_hint(secret)
    )

    assert key.account_id == account.id and key.revoked is False
    assert account_store.find_api_key(hash_key(secret)) == key
    assert account_store.get_api_key(key.id) == key
    assert account_store.find_api_key(hash_key(generate_key())) is None
    assert account_store.get_api_key("key_missing") is None


def test_keys_are_listed_oldest_first(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=0)
    created = [
        account_store.create_api_key(account_id=account.id, name=name, key_hash=hash_key(secret), hint=key_hint(secret))
        for name, secret in (("one", generate_key()), ("two", generate_key()), ("three", generate_key()))
    ]

    listed = account_store.list_api_keys()

    assert {key.id for key in listed} == {key.id for key in created}
    assert listed == sorted(listed, key=lambda key: (key.created_at, key.id))


def test_a_revoked_key_is_still_found_and_says_so(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=0)
    secret = generate_key()
    key = account_store.create_api_key(
        account_id=account.id, name="ci", key_hash=hash_key(secret), hint=key_hint(secret)
    )

    revoked = account_store.revoke_api_key(key.id)

    assert revoked.revoked is True and revoked.id == key.id
    assert account_store.find_api_key(hash_key(secret)).revoked is True  # type: ignore[union-attr]
    assert account_store.get_api_key(key.id).revoked is True  # type: ignore[union-attr]


def test_revoking_an_unknown_key_is_not_found(account_store: AccountStore) -> None:
    with pytest.raises(NotFoundError):
        account_store.revoke_api_key("key_missing")


# -- debits -------------------------------------------------------------------------------------
def test_a_debit_lowers_the_balance_and_records_a_negative_entry(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=1_000_000)

    entry = account_store.debit(_charge(account.id, 300_000))

    assert _balance(account_store, account.id) == 700_000
    assert entry.kind == "debit" and entry.account_id == account.id and entry.request_id == "req-1"
    assert entry.amount_micro_usd == -300_000
    assert entry.balance_after_micro_usd == 700_000
    assert (entry.model, entry.duration_ms, entry.billable_minutes) == ("transcribe-embedded", 61_000, 2)
    assert entry.description == "transcription"
    assert account_store.list_ledger(account.id)[0] == entry
    assert all(type(value) is int for value in (entry.amount_micro_usd, entry.balance_after_micro_usd))


def test_a_debit_beyond_the_balance_is_refused_and_changes_nothing(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=100)

    with pytest.raises(BillingError, match="insufficient balance"):
        account_store.debit(_charge(account.id, 101))

    assert _balance(account_store, account.id) == 100
    assert [entry.kind for entry in account_store.list_ledger(account.id)] == ["topup"]


def test_the_whole_balance_can_be_spent(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=100)

    assert account_store.debit(_charge(account.id, 100)).balance_after_micro_usd == 0
    assert _balance(account_store, account.id) == 0


def test_a_repeated_debit_charges_once(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=1_000)

    first = account_store.debit(_charge(account.id, 400))
    again = account_store.debit(_charge(account.id, 400))

    assert again == first
    assert _balance(account_store, account.id) == 600
    assert [entry.kind for entry in account_store.list_ledger(account.id)] == ["debit", "topup"]


def test_a_repeated_debit_is_returned_even_when_the_balance_no_longer_covers_it(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=400)
    first = account_store.debit(_charge(account.id, 400))

    assert account_store.debit(_charge(account.id, 400)) == first
    assert _balance(account_store, account.id) == 0


# -- refunds ------------------------------------------------------------------------------------
def test_a_refund_gives_the_debit_back_once(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=1_000)
    account_store.debit(_charge(account.id, 400))

    refund = account_store.refund(request_id="req-1", reason="provider failed")
    again = account_store.refund(request_id="req-1", reason="provider failed")

    assert refund is not None
    assert (refund.kind, refund.amount_micro_usd, refund.balance_after_micro_usd) == ("refund", 400, 1_000)
    assert refund.description == "provider failed" and refund.model == "transcribe-embedded"
    assert again == refund
    assert _balance(account_store, account.id) == 1_000
    assert [entry.kind for entry in account_store.list_ledger(account.id)] == ["refund", "debit", "topup"]


def test_a_refund_without_a_debit_does_nothing(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=1_000)

    assert account_store.refund(request_id="never-charged", reason="provider failed") is None
    assert _balance(account_store, account.id) == 1_000


# -- top-ups ------------------------------------------------------------------------------------
def test_a_top_up_adds_money_once_per_request(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=1_000)

    first = account_store.top_up(account_id=account.id, amount_micro_usd=500, request_id="pay-1")
    again = account_store.top_up(account_id=account.id, amount_micro_usd=500, request_id="pay-1")
    second = account_store.top_up(account_id=account.id, amount_micro_usd=250, request_id="pay-2")

    assert (first.kind, first.amount_micro_usd, first.balance_after_micro_usd) == ("topup", 500, 1_500)
    assert again == first
    assert second.balance_after_micro_usd == 1_750
    assert _balance(account_store, account.id) == 1_750


def test_a_top_up_must_be_positive(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=0)

    with pytest.raises(ValueError):
        account_store.top_up(account_id=account.id, amount_micro_usd=0, request_id="pay-1")


def test_a_top_up_of_an_unknown_account_is_not_found(account_store: AccountStore) -> None:
    with pytest.raises(NotFoundError):
        account_store.top_up(account_id="acct_missing", amount_micro_usd=1, request_id="pay-1")


# -- the ledger ---------------------------------------------------------------------------------
def test_the_ledger_pages_newest_first(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=10)
    for n in range(1, 6):
        account_store.top_up(account_id=account.id, amount_micro_usd=n, request_id=f"pay-{n}")
    other = account_store.create_account(name="Grace", balance_micro_usd=99)

    everything = account_store.list_ledger(account.id)
    first_page = account_store.list_ledger(account.id, limit=2)
    second_page = account_store.list_ledger(account.id, limit=2, before=first_page[-1].id)
    rest = account_store.list_ledger(account.id, limit=10, before=second_page[-1].id)

    assert [entry.balance_after_micro_usd for entry in everything] == [25, 20, 16, 13, 11, 10]
    assert first_page + second_page + rest == everything
    assert account_store.list_ledger(account.id, before=everything[-1].id) == []
    assert [entry.account_id for entry in account_store.list_ledger(other.id)] == [other.id]


def test_every_entry_records_the_balance_it_left(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=1_000)
    account_store.debit(_charge(account.id, 300, "req-1"))
    account_store.top_up(account_id=account.id, amount_micro_usd=50, request_id="pay-1")
    account_store.debit(_charge(account.id, 600, "req-2"))
    account_store.refund(request_id="req-1", reason="provider failed")

    oldest_first = list(reversed(account_store.list_ledger(account.id)))

    running = 0
    for entry in oldest_first:
        running += entry.amount_micro_usd
        assert entry.balance_after_micro_usd == running
    assert running == _balance(account_store, account.id) == 450


# -- concurrency --------------------------------------------------------------------------------
def test_concurrent_debits_never_overspend(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=7)
    start = threading.Barrier(20)

    def attempt(n: int) -> LedgerEntry | BillingError:
        start.wait()
        try:
            return account_store.debit(_charge(account.id, 1, f"req-{n}"))
        except BillingError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(attempt, range(20)))

    debits = [outcome for outcome in outcomes if isinstance(outcome, LedgerEntry)]
    assert len(debits) == 7
    assert sum(isinstance(outcome, BillingError) for outcome in outcomes) == 13
    assert _balance(account_store, account.id) == 0
    # Each successful debit saw a distinct balance: the balance_after values are exact.
    assert sorted(entry.balance_after_micro_usd for entry in debits) == [0, 1, 2, 3, 4, 5, 6]
    ledger = account_store.list_ledger(account.id)
    assert sum(entry.amount_micro_usd for entry in ledger if entry.kind == "debit") == -7


# -- wiring -------------------------------------------------------------------------------------
def test_the_aws_runtime_names_the_missing_table(aws: Settings) -> None:
    with pytest.raises(RuntimeError, match="EARSHOT_LEDGER_TABLE"):
        build_aws_ports(aws.model_copy(update={"ledger_table": None}))


def test_debits_and_keys_for_an_unknown_account_are_not_found(account_store: AccountStore) -> None:
    charge = Charge(
        request_id="r-ghost",
        account_id="acct_missing",
        amount_micro_usd=1,
        model="m",
        duration_ms=1,
        billable_minutes=1,
    )
    with pytest.raises(NotFoundError):
        account_store.debit(charge)
    with pytest.raises(NotFoundError):
        account_store.create_api_key(account_id="acct_missing", name="k", key_hash=hash_key(generate_key()), hint="h")


# -- webhook secrets ----------------------------------------------------------------------------
def test_an_account_has_no_webhook_secret_until_one_is_set(account_store: AccountStore) -> None:
    account = account_store.create_account(name="Ada", balance_micro_usd=0)

    assert account_store.get_webhook_secret(account.id) is None
    account_store.set_webhook_secret(account.id, "whsec_first")
    assert account_store.get_webhook_secret(account.id) == "whsec_first"


def test_setting_a_webhook_secret_again_rotates_it_for_that_account_only(account_store: AccountStore) -> None:
    ada = account_store.create_account(name="Ada", balance_micro_usd=5)
    bob = account_store.create_account(name="Bob", balance_micro_usd=0)
    account_store.set_webhook_secret(ada.id, "whsec_old")
    account_store.set_webhook_secret(bob.id, "whsec_bob")

    account_store.set_webhook_secret(ada.id, "whsec_new")

    assert account_store.get_webhook_secret(ada.id) == "whsec_new"
    assert account_store.get_webhook_secret(bob.id) == "whsec_bob"
    assert account_store.get_account(ada.id) == ada  # the secret is not part of the account's public state


def test_webhook_secrets_of_an_unknown_account(account_store: AccountStore) -> None:
    with pytest.raises(NotFoundError):
        account_store.set_webhook_secret("acct_missing", "whsec_x")
    assert account_store.get_webhook_secret("acct_missing") is None


def test_a_data_dir_from_before_webhook_secrets_is_migrated_in_place(tmp_path: Path) -> None:
    # Given an accounts table as the first release created it, with an account in it
    database = tmp_path / "earshot.db"
    with sqlite3.connect(database) as conn:
        conn.execute(
            "CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT NOT NULL, balance_micro_usd INTEGER NOT NULL"
            " CHECK (balance_micro_usd >= 0), audio_enabled INTEGER NOT NULL DEFAULT 1, created_at INTEGER NOT NULL)"
        )
        conn.execute("INSERT INTO accounts VALUES ('acct_old', 'Old', 42, 1, 1700000000)")
    conn.close()

    # When the store opens it (twice: a second process finds the column already there)
    SqliteStore(database)
    store = SqliteStore(database)

    # Then the account is intact and can hold a secret
    old = store.get_account("acct_old")
    assert old is not None and (old.name, old.balance_micro_usd) == ("Old", 42)
    assert store.get_webhook_secret("acct_old") is None
    store.set_webhook_secret("acct_old", "whsec_old")
    assert store.get_webhook_secret("acct_old") == "whsec_old"


# -- holds: every debit is held until its work is delivered (captured) or refunded ---------------
def test_a_debit_is_an_open_hold_until_captured(account_store: AccountStore) -> None:
    account = account_store.create_account(name="a", balance_micro_usd=1000)
    account_store.debit(_charge(account.id, 100, "req-held"))
    account_store.debit(_charge(account.id, 100, "req-done"))

    account_store.capture("req-done")

    held = account_store.open_holds(created_before=2**40)
    assert [entry.request_id for entry in held] == ["req-held"]
    assert held[0].kind == "debit" and held[0].amount_micro_usd == -100


def test_a_refund_closes_the_hold_and_capturing_twice_or_unknown_ids_is_harmless(account_store: AccountStore) -> None:
    account = account_store.create_account(name="a", balance_micro_usd=1000)
    account_store.debit(_charge(account.id, 100, "req-1"))
    account_store.refund(request_id="req-1", reason="failed")
    account_store.capture("req-1")
    account_store.capture("never-debited")

    assert account_store.open_holds(created_before=2**40) == []
    found = account_store.get_account(account.id)
    assert found is not None and found.balance_micro_usd == 1000


def test_open_holds_are_only_those_made_before_the_cutoff(account_store: AccountStore) -> None:
    account = account_store.create_account(name="a", balance_micro_usd=1000)
    entry = account_store.debit(_charge(account.id, 100, "req-1"))

    assert account_store.open_holds(created_before=entry.created_at) == []
    assert len(account_store.open_holds(created_before=entry.created_at + 1)) == 1
