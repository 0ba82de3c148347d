"""Lambda entry point for the HTTP API authorizer (payload format 2.0, simple responses)."""

from __future__ import annotations

from typing import Any

from earshot.api.authorizer import authorize_event
from earshot.observability import logger


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return authorize_event(event)
