"""Creating accounts and keys, and the operator's key commands (the CLI calls these)."""

from __future__ import annotations

from dataclasses import dataclass

from earshot.errors import AuthError, NotEnabledError, NotFoundError
from earshot.keys import generate_key, hash_key, key_hint, new_id
from earshot.ports import Account, AccountStore, ApiKey, LedgerEntry, Principal


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    account: Account
    secret: str  # shown once, never stored


def create_key(store: AccountStore, *, name: str, balance_micro_usd: int) -> NewKey:
    """A new account with ``balance_micro_usd`` and its first API key."""
    if balance_micro_usd < 0:
        raise ValueError("the opening balance cannot be negative")
    account = store.create_account(name=name, balance_micro_usd=balance_micro_usd)
    secret = generate_key()
    key = store.create_api_key(account_id=account.id, name=name, key_hash=hash_key(secret), hint=key_hint(secret))
    return NewKey(key=key, account=account, secret=secret)


def key_account(store: AccountStore, key_id: str) -> tuple[ApiKey, Account]:
    key = store.get_api_key(key_id)
    account = store.get_account(key.account_id) if key else None
    if key is None or account is None:
        raise NotFoundError(f"no API key {key_id}")
    return key, account


def top_up_key(store: AccountStore, key_id: str, amount_micro_usd: int) -> LedgerEntry:
    _, account = key_account(store, key_id)
    return store.top_up(account_id=account.id, amount_micro_usd=amount_micro_usd, request_id=new_id("topup"))


def audio_account(store: AccountStore, principal: Principal) -> Account:
    """The caller's account, if audio routes are enabled for it."""
    account = store.get_account(principal.account_id)
    if account is None:
        raise AuthError("the API key's account no longer exists")
    if not account.audio_enabled:
        raise NotEnabledError("audio is not enabled for this account")
    return account
