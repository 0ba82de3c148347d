"""The OpenAPI 3.1 document, generated from the route manifest and the pydantic models.

It says what the server does: every path parameter, query parameter and header a route reads, the
audio sources a processing route takes (exactly one: ``oneOf``), each success status (200, 201 for an
upload, 202 for a task) with its media types (JSON, text formats, ``text/event-stream``), and every
error status the route's error contract answers, in that contract's shape. A property-based fuzzer
(schemathesis, ``tests/e2e/test_openapi_fuzz.py``) holds the server to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from earshot import __version__
from earshot.catalog import Catalog
from earshot.routes import ROUTES, Route
from earshot.schemas import ErrorEnvelope, MessageError, TaskOut

_REF = "#/components/schemas/{model}"
_STATUS_TEXT = {
    400: "Invalid request or audio",
    401: "Missing or invalid API key",
    402: "Insufficient balance",
    403: "No permission (audio not enabled for the account)",
    404: "Not found, or audio not enabled for the account",
    409: "Idempotency conflict",
    413: "Body or audio too large, or audio too long for a sync request",
    415: "Unsupported content type",
    422: "Result does not match the schema",
    429: "Rate limited",
    500: "Extraction failed, or an unexpected error",
    502: "Provider error",
    504: "Provider timeout",
}
# Each error contract's body (earshot.http.contracts).
_ERROR_MODELS: dict[str, type[BaseModel]] = {
    "openai": ErrorEnvelope,
    "v2": ErrorEnvelope,
    "extract-audio": MessageError,
}

# What a caller may send as audio, besides a multipart file part.
HTTPS_URL = {
    "type": "string",
    "format": "uri",
    "pattern": "^https?://[^\\s/?#]+",
    "maxLength": 2048,
    "description": "An https URL, fetched server-side (http only to hosts the deployment allows, e.g. loopback in "
    "local development).",
}
DATA_URL = {
    "type": "string",
    "pattern": "^data:audio/[-+.\\w]+;base64,[A-Za-z0-9+/]+={0,2}$",
    "description": "The audio itself: data:audio/<type>;base64,<payload>.",
}
BASE64_AUDIO = {
    "type": "string",
    "pattern": "^(data:audio/[-+.\\w]+;base64,)?[A-Za-z0-9+/]+={0,2}$",
    "description": "The audio as base64 (a data:audio/...;base64, URL is accepted too).",
}
FILE_ID = {
    "type": "string",
    "pattern": "^file-[0-9a-f]{1,59}$",
    "description": "A finished /v1/uploads file.",
}
TASK_ID = {"type": "string", "pattern": "^task-[a-z0-9]+-[0-9]+-[a-z0-9]+$", "maxLength": 128}

_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Run the request once; a retry with the same key and body replays the answer.",
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]([\\x20-\\x7e]{0,253}[\\x21-\\x7e])?$"},
}
_PREFER = {
    "name": "Prefer",
    "in": "header",
    "required": False,
    "description": "respond-async: answer 202 with a task instead of waiting for the result (other preferences "
    "are ignored, as RFC 7240 says).",
    "schema": {"type": "string"},
}
# One Server-Sent Event, as a client's parser reads it (text/event-stream answers are a series of these).
SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string", "description": "JSON, or [DONE] at the end of an OpenAI-style stream."},
        "id": {"type": "string", "pattern": "^[0-9]{1,15}$"},
        "retry": {"type": "integer", "minimum": 0},
    },
}
# What a transcription form's fields require of each other (the server checks the same before any charge).
_DIARIZED = {"properties": {"response_format": {"const": "diarized_json"}}, "required": ["response_format"]}
_TRANSCRIPTION_RULES = {
    "stream": {  # streaming answers json, text or verbose_json
        "anyOf": [
            {"properties": {"stream": {"const": False}}},
            {"properties": {"response_format": {"enum": ["json", "text", "verbose_json"]}}},
        ]
    },
    "known_speaker_names[]": _DIARIZED,  # known speakers name the voices of a diarized_json answer
    "known_speaker_references[]": _DIARIZED,
}
# The async control as the server reads it (earshot.http.controls: trimmed, any case).
_FLAG = {
    "type": "string",
    "pattern": "^\\s*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[Yy][Ee][Ss]|[Nn][Oo]|[Oo][Nn]|[Oo][Ff][Ff]|1|0|)\\s*$",
}
_ASYNC_QUERY = {
    "name": "async",
    "in": "query",
    "required": False,
    "description": "true: answer 202 with a task (as Prefer: respond-async).",
    "schema": _FLAG,
}
_LAST_EVENT_ID = {"type": "string", "pattern": "^[0-9]{1,15}$"}


def _control_properties(route: Route) -> dict[str, Any]:
    """The control fields a processing route takes in its body (read before the body's own fields)."""
    callback = {**HTTPS_URL, "description": "With async: the finished task is POSTed here, signed."}
    if route.path == "/v1/audio/understanding":  # always a task
        return {"callback_url": callback}
    flag: dict[str, Any] = _FLAG
    if route.request_content_type == "application/json":
        flag = {"anyOf": [{"type": "boolean"}, {"type": "null"}, {"enum": [0, 1]}, _FLAG]}
    return {"async": {**flag, "description": "true: answer 202 with a task."}, "callback_url": callback}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _parameters(route: Route) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": TASK_ID if name == "task_id" else {"type": "string"}}
        for name in re.findall(r"\{(\w+)\}", route.path)
    ]
    if route.query_model is not None:
        query_schema = route.query_model.model_json_schema()
        required = set(query_schema.get("required", []))
        parameters += [
            {"name": name, "in": "query", "required": name in required, "schema": prop}
            for name, prop in query_schema.get("properties", {}).items()
        ]
    if route.path.endswith("/events"):
        parameters += [
            {"name": "Last-Event-ID", "in": "header", "required": False, "schema": _LAST_EVENT_ID},
            {"name": "last_event_id", "in": "query", "required": False, "schema": _LAST_EVENT_ID},
        ]
    if route.processing and route.path != "/v1/audio/understanding":  # understanding is a task already
        parameters += [_ASYNC_QUERY, _PREFER]
    if route.method == "POST" and route.auth:
        parameters.append(_IDEMPOTENCY_KEY)
    return parameters


def _success(route: Route) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": "Created" if route.success_status == 201 else "OK"}
    if route.responses:
        schema: dict[str, Any] = (
            _ref(route.responses[0]) if len(route.responses) == 1 else {"anyOf": [_ref(m) for m in route.responses]}
        )
        answer["content"] = {route.response_content_types[0]: {"schema": schema}}
        for content_type in route.response_content_types[1:]:
            answer["content"][content_type] = {"schema": {"type": "string"}}
    else:
        media_type = route.response_content_types[0]
        schema = SSE_EVENT if media_type == "text/event-stream" else {"type": "object"}
        answer["content"] = {media_type: {"schema": schema}}
    if route.streams:
        answer["content"]["text/event-stream"] = {"schema": SSE_EVENT}
    return answer


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary, "tags": [route.function]}
    operation["security"] = [{"bearerAuth": []}] if route.auth else []
    if parameters := _parameters(route):
        operation["parameters"] = parameters
    if route.request_model is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {route.request_content_type: {"schema": _ref_named(_body_name(route))}},
        }
    ok = _success(route)
    if route.examples is not None:
        _add_examples(operation, ok, route)
    operation["responses"] = {str(route.success_status): ok}
    if route.processing:
        operation["responses"]["202"] = {
            "description": "Accepted: a task (GET /v1/tasks/{task_id} for its result)",
            "content": {"application/json": {"schema": _ref(TaskOut)}},
        }
    error_schema = _ref(_ERROR_MODELS[route.errors])
    for status in declared_errors(route):
        operation["responses"][str(status)] = {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": error_schema}},
        }
    return operation


def declared_errors(route: Route) -> list[int]:
    """The route's own error statuses, plus those every route of its kind can answer: 400 (a malformed request,
    query or header), 413 (a body over the gateway's limit; a 400 in the compatibility contracts), and on
    authenticated routes 401 and 429 (every key is rate limited), and 409 on their POSTs (Idempotency-Key)."""
    statuses = {*route.error_statuses, 400}
    if route.auth:
        statuses |= {401, 429}
    if route.errors == "openai":
        statuses.add(413)
        if route.auth and route.method == "POST":
            statuses.add(409)
    return sorted(statuses)


def _add_examples(operation: dict[str, Any], ok: dict[str, Any], route: Route) -> None:
    """The route's example request and answer on its first request and response media types."""
    assert route.examples is not None
    if route.examples.request is not None and "requestBody" in operation:
        operation["requestBody"]["content"][route.request_content_type]["example"] = route.examples.request
    if route.examples.response is not None:
        first = next(iter(ok["content"].values()))
        first["example"] = route.examples.response


def _request_body(route: Route, definitions: dict[str, Any], names: ModelNames) -> dict[str, Any]:
    """The request body's schema: the model's, with its audio sources (exactly one), the control fields, and
    the model names this deployment serves for the route."""
    assert route.request_model is not None
    schema = definitions[route.request_model.__name__]
    properties = dict(schema.get("properties", {}))
    if route.request_content_type.startswith("multipart/"):
        # A form field is text: leaving it out is how a form says "none" (no JSON null).
        properties = {name: _without_null(prop) for name, prop in properties.items()}
        if "url" in properties and "file_id" in properties:
            properties["url"] = {**properties["url"], **HTTPS_URL}
            properties["file_id"] = {**properties["file_id"], **FILE_ID}
            schema = {**schema, "oneOf": [{"required": [name]} for name in ("file", "url", "file_id")]}
        if "stream" in properties and "known_speaker_names[]" in properties:
            schema = {**schema, "dependentSchemas": _TRANSCRIPTION_RULES}
            for name in ("known_speaker_names[]", "known_speaker_references[]"):
                properties[name] = {**properties[name], "uniqueItems": name.startswith("known_speaker_names")}
            speakers = properties["known_speaker_names[]"]
            properties["known_speaker_names[]"] = {**speakers, "items": {**speakers["items"], "minLength": 1}}
            references = properties["known_speaker_references[]"]
            properties["known_speaker_references[]"] = {**references, "items": DATA_URL}
    if route.path == "/v1/audio/understanding":
        properties["audio"] = {
            "description": properties["audio"].get("description", ""),
            "oneOf": [HTTPS_URL, DATA_URL, FILE_ID],
        }
    if route.path == "/api/v1/extract-audio":
        schema = {
            **schema,
            "oneOf": [_source("url", HTTPS_URL), _source("base64", BASE64_AUDIO), _source("file_id", FILE_ID)],
        }
    if route.processing:
        properties.update(_control_properties(route))
    if route.path == "/v1/audio/translations":
        schema, properties = _for_translation(schema, properties)
    served = _MODEL_KINDS.get(route.path, "")
    _name_models(properties, names, served)
    return {**_with_language_rule(schema, properties, names, served), "properties": properties}


def _for_translation(schema: dict[str, Any], properties: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A translation answers in English text: no diarized_json, so no known speakers."""
    properties = {name: prop for name, prop in properties.items() if not name.startswith("known_speaker")}
    formats = [f for f in properties["response_format"]["enum"] if f != "diarized_json"]
    properties["response_format"] = {**properties["response_format"], "enum": formats}
    rules = {name: rule for name, rule in schema.get("dependentSchemas", {}).items() if name in properties}
    return {**schema, "dependentSchemas": rules} if rules else schema, properties


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    branches = prop.get("anyOf")
    if not branches:
        return prop
    kept = [branch for branch in branches if branch.get("type") != "null"]
    rest = {key: value for key, value in prop.items() if key not in ("anyOf", "default")}
    if prop.get("default") is not None:
        rest["default"] = prop["default"]
    return {**kept[0], **rest} if len(kept) == 1 else {**rest, "anyOf": kept}


def _name_models(properties: dict[str, Any], catalog_names: ModelNames, served: str) -> None:
    """``model``: a SKU or alias the catalog serves for ``served``, ``language``: one those models take (when known)."""
    if "language" in properties and f"languages.{served}" in catalog_names:
        properties["language"] = {**properties["language"], "enum": catalog_names[f"languages.{served}"]}
    names = catalog_names.get(served)
    if names is None or "model" not in properties:
        return
    model = properties["model"]
    choice = {
        "type": "string",
        "enum": names,
        "description": "A SKU or alias of GET /v1/models. An upstream SKU that is not `live` there is "
        "refused (400, before any charge) until its provider credential is configured.",
    }
    if "anyOf" in model:  # nullable (an upload's process.model)
        properties["model"] = {**model, "anyOf": [choice, {"type": "null"}]}
    else:
        properties["model"] = {**{k: v for k, v in model.items() if k not in ("minLength", "maxLength")}, **choice}


def _with_language_rule(
    schema: dict[str, Any], properties: dict[str, Any], catalog_names: ModelNames, served: str
) -> dict[str, Any]:
    """``language``: one the chosen model (``transcribe`` when none is named) takes."""
    models = catalog_names.get(f"by_model.{served}")
    if not models or "language" not in properties:
        return schema
    branches = []
    for model_names_, languages in models:
        branch: dict[str, Any] = {"properties": {"model": {"enum": model_names_}}}
        if languages is not None:
            branch["properties"]["language"] = {"enum": languages}
        if "transcribe" not in model_names_:  # the default model's branch also covers a request that names none
            branch["required"] = ["model"]
        branches.append(branch)
    return {**schema, "dependentSchemas": {**schema.get("dependentSchemas", {}), "language": {"anyOf": branches}}}


def _source(method: str, audio: dict[str, Any]) -> dict[str, Any]:
    return {
        "properties": {"inputMethod": {"const": method}, "audio": audio},
        "required": ["inputMethod", "audio"],
    }


# Which catalog models a route's ``model`` names (ModelNames' keys).
_MODEL_KINDS = {
    "/v1/audio/transcriptions": "transcription",
    "/api/v2/Audio/transcribe": "transcription",
    "/v1/audio/translations": "translation",
    "/v1/audio/understand": "understanding",
    "/v1/audio/understanding": "understanding",
    "/api/v1/extract-audio": "extraction",
}
ModelNames = Mapping[str, Any]


def model_names(catalog: Catalog) -> dict[str, Any]:
    """The names a request may use, by what they serve (transcription, translation, understanding, extraction),
    and ``languages.<kind>``: the languages those models take, where every one of them lists its own."""
    names: dict[str, list[str]] = {"transcription": [], "translation": [], "understanding": [], "extraction": []}
    for model in catalog.models:
        for name in (model.sku, *model.aliases):
            names[model.kind].append(name)
            if model.kind == "transcription" and model.translates:
                names["translation"].append(name)
    languages: dict[str, Any] = {}
    for kind in ("transcription", "translation"):
        served = [m for m in catalog.models if m.kind == "transcription" and (kind != "translation" or m.translates)]
        if served and all(m.languages for m in served):  # else some model takes any language
            languages[f"languages.{kind}"] = sorted({code for m in served for code in m.languages or ()})
        # Which language each model takes: [its names, its languages (None: any)].
        languages[f"by_model.{kind}"] = [[[m.sku, *m.aliases], m.languages] for m in served]
    return {**{kind: sorted(found) for kind, found in names.items()}, **languages}


def build_openapi(catalog: Catalog | None = None) -> dict[str, Any]:
    """The document; with ``catalog``, each ``model`` field lists the names that catalog serves."""
    return _build(json.dumps(model_names(catalog), sort_keys=True) if catalog else "{}")


@lru_cache(maxsize=4)
def _build(catalog_names: str) -> dict[str, Any]:
    names: ModelNames = json.loads(catalog_names)
    models: set[type[BaseModel]] = {ErrorEnvelope, MessageError, TaskOut}
    for route in ROUTES:
        models.update(route.responses)
        if route.request_model is not None:
            models.add(route.request_model)
    _, definitions = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
        ref_template=_REF,
    )
    schemas: dict[str, Any] = definitions.get("$defs", {})
    _add_upload_options(schemas, names)
    bodies = {_body_name(route): _request_body(route, schemas, names) for route in ROUTES if route.request_model}
    schemas.update(bodies)
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
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "sk-es-..."}},
        },
    }


def _body_name(route: Route) -> str:
    assert route.request_model is not None
    return "TranslationForm" if route.path == "/v1/audio/translations" else route.request_model.__name__


# What a self-processing upload's process.options are, by kind: the route's own body without its audio.
_UPLOAD_KINDS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("transcription", "TranscriptionForm", ("file", "url", "file_id"), "transcription"),
    ("translation", "TranscriptionForm", ("file", "url", "file_id"), "translation"),
    ("transcribev2", "V2TranscribeForm", ("file",), "transcription"),
    ("understand", "UnderstandForm", ("file", "url", "file_id"), "understanding"),
    ("extract", "ExtractRequest", ("inputMethod", "audio"), "extraction"),
    ("llm", "UnderstandingRequest", ("audio",), "understanding"),
)


def _add_upload_options(schemas: dict[str, Any], names: ModelNames) -> None:
    """``UploadProcess`` as one branch per kind, each with that kind's options (``<Kind>Options``)."""
    branches = []
    for kind, model, audio_fields, served in _UPLOAD_KINDS:
        source = schemas[model]
        name = f"{kind.capitalize()}Options"
        properties = {k: v for k, v in source.get("properties", {}).items() if k not in audio_fields}
        _name_models(properties, names, served)
        options = {**_with_language_rule(source, properties, names, served), "title": name, "properties": properties}
        if kind == "translation":
            options, options["properties"] = _for_translation(options, properties)
        required = [k for k in source.get("required", []) if k not in audio_fields]
        options.pop("required", None)
        if required:
            options["required"] = required
        schemas[name] = options
        branch_properties: dict[str, Any] = {"kind": {"const": kind}, "options": _ref_named(name)}
        if served in names:
            branch_properties["model"] = {"anyOf": [{"enum": names[served]}, {"type": "null"}]}
        branch: dict[str, Any] = {"properties": branch_properties}
        if required:
            branch["required"] = ["options"]
        branches.append(branch)
    process = schemas["UploadProcess"]
    properties = {**process["properties"], "callback_url": {"anyOf": [HTTPS_URL, {"type": "null"}], "default": None}}
    schemas["UploadProcess"] = {**process, "properties": properties, "oneOf": branches}


def _ref_named(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}
