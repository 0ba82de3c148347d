"""The OpenAPI 3.1 document, generated from the route manifest and the pydantic models."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from earshot import __version__
from earshot.routes import ROUTES, Route
from earshot.schemas import ErrorEnvelope

_REF = "#/components/schemas/{model}"
_STATUS_TEXT = {
    400: "Invalid request or audio",
    401: "Missing or invalid API key",
    402: "Insufficient balance",
    404: "Not found, or audio not enabled for the account",
    409: "Idempotency conflict",
    413: "File too large",
    422: "Result does not match the schema",
    429: "Rate limited",
    502: "Provider error",
    504: "Provider timeout",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary, "tags": [route.function]}
    if route.auth:
        operation["security"] = [{"bearerAuth": []}]
    else:
        operation["security"] = []
    if route.query_model is not None:
        query_schema = route.query_model.model_json_schema()
        required = set(query_schema.get("required", []))
        operation["parameters"] = [
            {"name": name, "in": "query", "required": name in required, "schema": prop}
            for name, prop in query_schema.get("properties", {}).items()
        ]
    if route.request_model is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {route.request_content_type: {"schema": _ref(route.request_model)}},
        }
    ok: dict[str, Any] = {"description": "OK"}
    if route.responses:
        schema: dict[str, Any] = (
            _ref(route.responses[0]) if len(route.responses) == 1 else {"oneOf": [_ref(m) for m in route.responses]}
        )
        ok["content"] = {route.response_content_types[0]: {"schema": schema}}
        for content_type in route.response_content_types[1:]:
            ok["content"][content_type] = {"schema": {"type": "string"}}
    else:
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    if route.examples is not None:
        _add_examples(operation, ok, route)
    operation["responses"] = {"200": ok}
    for status in route.error_statuses:
        operation["responses"][str(status)] = {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": _ref(ErrorEnvelope)}},
        }
    return operation


def _add_examples(operation: dict[str, Any], ok: dict[str, Any], route: Route) -> None:
    """The route's example request and answer on its first request and response media types."""
    assert route.examples is not None
    if route.examples.request is not None and "requestBody" in operation:
        operation["requestBody"]["content"][route.request_content_type]["example"] = route.examples.request
    if route.examples.response is not None:
        if not route.responses and route.response_content_types[0] != "application/json":
            ok["content"] = {route.response_content_types[0]: {"schema": {"type": "string"}}}
        first = next(iter(ok["content"].values()))
        first["example"] = route.examples.response


@lru_cache(maxsize=1)
def build_openapi() -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorEnvelope}
    for route in ROUTES:
        models.update(route.responses)
        if route.request_model is not None:
            models.add(route.request_model)
    _, definitions = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
        ref_template=_REF,
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Earshot",
            "version": __version__,
            "description": "Audio AI API: transcription, audio understanding and extraction, metered per second.",
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "sk-es-..."}},
        },
    }
