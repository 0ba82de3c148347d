"""pydantic validation at the boundary, with failures as 400 ``invalid_request`` envelopes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from earshot.errors import InvalidRequestError

if TYPE_CHECKING:
    from earshot.http.request import ApiRequest

ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_model(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = first.get("loc") or ()
        param = ".".join(str(part) for part in loc) or None
        if first.get("type") == "extra_forbidden":
            message = f"unknown parameter {param!r}"
        else:
            message = f"invalid {param!r}: {first.get('msg', 'invalid value')}" if param else str(first.get("msg"))
        raise InvalidRequestError(message, param=param) from exc


def json_body(request: ApiRequest) -> dict[str, Any]:
    if not request.content_type.lower().startswith("application/json"):
        raise InvalidRequestError("send a JSON body (Content-Type: application/json)")
    try:
        payload = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError("the body is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise InvalidRequestError("the body must be a JSON object")
    return payload
