"""Account state governs all work: checked again when queued or upload-triggered work starts, before any charge.

A request is checked when it arrives (the authorizer, ``audio_account``); work that starts later (an
async task picked up by the workflow, a self-processing upload landing in the bucket) is checked again
here, because the account may have changed in between: audio disabled (``earshot keys disable-audio``),
the submitting key revoked, or the balance spent.
"""

from __future__ import annotations

from earshot.errors import AuthError, BillingError, NotEnabledError
from earshot.runtime import Runtime

# Tasks submitted by an upload before uploads remembered their key carry this placeholder.
UNKNOWN_KEY = "upload"


def ensure_may_start(runtime: Runtime, account_id: str, key_id: str | None, *, check_balance: bool = True) -> None:
    """Raise unless the account may start audio work now (nothing is charged by this check).

    ``check_balance=False`` right before a debit, which refuses an insufficient balance itself (and a retried
    step whose debit went through must not fail on the balance that debit spent).
    """
    account = runtime.store.get_account(account_id)
    if account is None:
        raise AuthError("the account that submitted this work no longer exists")
    if not account.audio_enabled:
        raise NotEnabledError("audio is not enabled for this account")
    if key_id and key_id != UNKNOWN_KEY:
        key = runtime.store.get_api_key(key_id)
        if key is None or key.revoked or key.account_id != account_id:
            raise AuthError("the API key that submitted this work has been revoked")
    if check_balance and account.balance_micro_usd <= 0:
        raise BillingError("insufficient balance: top up the account; nothing was charged")
