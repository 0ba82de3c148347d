"""The request's control fields, read in one place: ``async`` (a form field, a JSON field or the query),
``Prefer: respond-async``, and ``callback_url``. They steer how a request runs, not what it computes, so
they are taken out before the body is validated against the route's schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from earshot.errors import InvalidRequestError
from earshot.http.request import ApiRequest

CONTROL_FIELDS = ("async", "callback_url")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class Controls:
    run_async: bool
    callback_url: str | None


def pop_json_controls(payload: dict[str, Any], names: tuple[str, ...] = CONTROL_FIELDS) -> dict[str, str]:
    """Take the control fields out of a JSON body (JSON ``true`` reads as ``"true"``)."""
    controls: dict[str, str] = {}
    for name in names:
        if name in payload:
            value = payload.pop(name)
            if value is None:
                continue
            controls[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return controls


def read_controls(request: ApiRequest, fields: Mapping[str, str], *, force_async: bool = False) -> Controls:
    """The controls of ``request``: ``fields`` from its form or JSON body, then its query and ``Prefer`` header."""
    return Controls(
        run_async=force_async or _wants_async(request, fields), callback_url=fields.get("callback_url") or None
    )


def _wants_async(request: ApiRequest, fields: Mapping[str, str]) -> bool:
    prefer = request.headers.get("prefer", "")
    if any(part.strip().lower() == "respond-async" for part in prefer.split(",")):
        return True
    # The body's field wins over the query's; each one sent must be a flag (a malformed one is never ignored).
    sent = [
        str(value).strip().lower() for value in (fields.get("async"), request.query.get("async")) if value is not None
    ]
    for value in sent:
        if value not in _TRUE | _FALSE:
            raise InvalidRequestError("async must be true or false", param="async")
    return bool(sent) and sent[0] in _TRUE
