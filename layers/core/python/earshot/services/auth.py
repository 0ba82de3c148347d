"""Resolving an ``Authorization: Bearer`` header to a principal (the authorizer's logic)."""

from __future__ import annotations

from dataclasses import dataclass

from earshot.keys import hash_key, is_well_formed
from earshot.ports import AccountStore, Principal


@dataclass(frozen=True)
class AuthDecision:
    principal: Principal | None
    reason: str = ""


def resolve_bearer(store: AccountStore, authorization: str | None) -> AuthDecision:
    if not authorization:
        return AuthDecision(None, "missing API key")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return AuthDecision(None, "the Authorization header must be 'Bearer <key>'")
    if not is_well_formed(token):
        return AuthDecision(None, "invalid API key")
    key = store.find_api_key(hash_key(token))
    if key is None:
        return AuthDecision(None, "invalid API key")
    if key.revoked:
        return AuthDecision(None, "this API key has been revoked")
    return AuthDecision(Principal(account_id=key.account_id, key_id=key.id))
