"""extract-audio's error contract: ``{"error": "message"}`` with 400, 401 or 500 (and 429 when rate limited).

From the reference document: 400 for an invalid request or audio over the size or duration limits,
401 ``{"error": "Invalid or missing Authorization header"}``, 500 ``{"error": "Failed to extract audio
data: [details]"}`` when extraction fails. Everything a client could fix (a bad field, undecodable
audio, too large or too long, an unknown model, insufficient credits, an unknown file_id) is a 400;
every failure of the extraction itself (an upstream model failing or timing out, an answer that never
matched the caller's ``schema``) is a 500 in the documented wording, and never charged.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from earshot.errors import AuthError, EarshotError, MethodNotAllowedError, RateLimitedError, SchemaMismatchError

if TYPE_CHECKING:
    from earshot.http.contracts import ErrorReply

UNAUTHORIZED = "Invalid or missing Authorization header"
FAILED = "Failed to extract audio data: "


def status_and_message(error: EarshotError) -> tuple[int, str]:
    if isinstance(error, AuthError):
        return 401, UNAUTHORIZED
    if isinstance(error, RateLimitedError):
        return 429, error.message
    if isinstance(error, MethodNotAllowedError):  # HTTP's own answer for a method the path does not take
        return 405, error.message
    if error.status >= 500 or isinstance(error, SchemaMismatchError):
        return 500, FAILED + error.message
    return 400, error.message


def render(error: EarshotError, request_id: str) -> ErrorReply:
    from earshot.http.contracts import ErrorReply, base_headers

    status, message = status_and_message(error)
    return ErrorReply(status=status, headers=base_headers(error, request_id), body=json.dumps({"error": message}))
