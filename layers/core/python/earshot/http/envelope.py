"""The one place errors become responses: ``{"error": {message, type, code, param, request_id}}``."""

from __future__ import annotations

from earshot.errors import EarshotError
from earshot.schemas import ErrorBody, ErrorEnvelope


def error_body(error: EarshotError, request_id: str) -> str:
    return ErrorEnvelope(
        error=ErrorBody(
            message=error.message,
            type=error.type,
            code=error.code,
            param=error.param,
            request_id=request_id,
        )
    ).model_dump_json()


def error_headers(error: EarshotError, request_id: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Request-Id": request_id}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    headers.update(error.headers)
    return headers
