"""The HTTP API Lambda authorizer (payload 2.0, simple responses).

It never denies at the gateway: a denial there returns API Gateway's own ``{"message": ...}`` body,
not Earshot's error envelope. It always answers ``isAuthorized: true`` with a context that either
names the caller (``account_id``, ``key_id``) or says why there is none (``auth_error``); every
protected endpoint then requires a principal and answers 401 ``auth_error`` in the envelope. The
answer is cached by API Gateway per Authorization header for at most 60 s, so a revoked key stops
working within a minute. See docs/decisions.md.
"""

from __future__ import annotations

from typing import Any

from earshot.observability import logger
from earshot.runtime import get_runtime
from earshot.services.auth import resolve_bearer


def authorize_event(event: dict[str, Any]) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    decision = resolve_bearer(get_runtime().store, headers.get("authorization"))
    if decision.principal is None:
        logger.info("unauthenticated", extra={"reason": decision.reason})
        return {"isAuthorized": True, "context": {"auth_error": decision.reason}}
    logger.thread_safe_append_keys(key_id=decision.principal.key_id)
    return {
        "isAuthorized": True,
        "context": {"account_id": decision.principal.account_id, "key_id": decision.principal.key_id},
    }
