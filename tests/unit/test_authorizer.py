"""The authorizer resolves keys to ids and never leaks the key itself."""

from __future__ import annotations

from pathlib import Path

from earshot.api.authorizer import authorize_event
from earshot.runtime import get_runtime
from earshot.services.accounts import NewKey


def _event(authorization: str | None) -> dict[str, object]:
    headers = {"authorization": authorization} if authorization is not None else {}
    return {"version": "2.0", "type": "REQUEST", "headers": headers}


def test_a_valid_key_resolves_to_its_account(new_key: NewKey) -> None:
    result = authorize_event(_event(f"Bearer {new_key.secret}"))
    assert result == {
        "isAuthorized": True,
        "context": {"account_id": new_key.account.id, "key_id": new_key.key.id},
    }


def test_invalid_revoked_and_missing_keys_carry_a_reason_only(new_key: NewKey, data_dir: Path) -> None:
    assert authorize_event(_event(None))["context"] == {"auth_error": "missing API key"}
    assert "auth_error" in authorize_event(_event("Bearer sk-es-" + "x" * 38))["context"]
    get_runtime().store.revoke_api_key(new_key.key.id)
    context = authorize_event(_event(f"Bearer {new_key.secret}"))["context"]
    assert context == {"auth_error": "this API key has been revoked"}
    assert new_key.secret not in str(context)
