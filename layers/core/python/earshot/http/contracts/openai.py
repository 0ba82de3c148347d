"""The OpenAI-style error envelope: ``{"error": {message, type, code, param, request_id}}``.

The contract of the OpenAI-compatible routes (transcriptions, translations) and of Earshot's own
(understand, understanding, tasks, uploads, models, account): the error's own status and code, as in
DESIGN.md's table (413 ``file_too_large``, 402 ``billing_error``, 404 ``not_enabled``, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from earshot.errors import EarshotError
from earshot.schemas import ErrorBody, ErrorEnvelope

if TYPE_CHECKING:
    from earshot.http.contracts import ErrorReply


def render(error: EarshotError, request_id: str) -> ErrorReply:
    from earshot.http.contracts import ErrorReply, base_headers

    return ErrorReply(status=error.status, headers=base_headers(error, request_id), body=body(error, request_id))


def body(error: EarshotError, request_id: str) -> str:
    return ErrorEnvelope(
        error=ErrorBody(
            message=error.message,
            type=error.type,
            code=error.code,
            param=error.param,
            request_id=request_id,
        )
    ).model_dump_json()
