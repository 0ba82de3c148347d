"""pydantic validation at the boundary, with failures as 400 ``invalid_request`` envelopes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from earshot.errors import InvalidRequestError

if TYPE_CHECKING:
    from earshot.http.request import ApiRequest

ModelT = TypeVar("ModelT", bound=BaseModel)
# Deepest JSON body accepted (a submitted JSON Schema has its own, tighter limit inside this one).
MAX_JSON_DEPTH = 64


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
        payload = json.loads(request.body_bytes() or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError("the body is not valid JSON") from exc
    except RecursionError as exc:  # the decoder's own depth guard
        raise InvalidRequestError(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep") from exc
    if not isinstance(payload, dict):
        raise InvalidRequestError("the body must be a JSON object")
    check_json_depth(payload, MAX_JSON_DEPTH, what="the JSON body")
    return payload


def check_json_depth(value: Any, limit: int, *, what: str, param: str | None = None) -> None:
    """Refuse ``value`` nested deeper than ``limit`` arrays/objects (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                raise InvalidRequestError(f"{what} is nested more than {limit} levels deep", param=param)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
