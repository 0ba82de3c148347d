"""The OpenAPI document says what the server does (the fuzz test, tests/e2e/test_openapi_fuzz.py, holds it to it)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from earshot.catalog import cached_catalog
from earshot.config import Settings
from earshot.openapi import build_openapi, declared_errors
from earshot.routes import ROUTES, Route


def _operation(route: Route) -> dict[str, Any]:
    return build_openapi()["paths"][route.path][route.method.lower()]  # type: ignore[no-any-return]


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.operation_id)
def test_every_path_parameter_is_declared(route: Route) -> None:
    declared = {p["name"] for p in _operation(route).get("parameters", []) if p["in"] == "path"}
    assert declared == set(re.findall(r"\{(\w+)\}", route.path))


def test_events_are_server_sent_events_and_take_last_event_id() -> None:
    operation = build_openapi()["paths"]["/v1/tasks/{task_id}/events"]["get"]
    assert list(operation["responses"]["200"]["content"]) == ["text/event-stream"]
    names = {(p["in"], p["name"]) for p in operation["parameters"]}
    assert {("header", "Last-Event-ID"), ("query", "last_event_id")} <= names


def test_uploads_answer_201_and_processing_routes_202() -> None:
    paths = build_openapi()["paths"]
    assert set(paths["/v1/uploads"]["post"]["responses"]) >= {"201"} and "200" not in paths["/v1/uploads"]["post"]
    for route in ROUTES:
        assert ("202" in _operation(route)["responses"]) == route.processing, route.path


def test_audio_sources_are_one_of() -> None:
    schemas = build_openapi()["components"]["schemas"]
    assert schemas["TranscriptionForm"]["oneOf"] == [{"required": [n]} for n in ("file", "url", "file_id")]
    assert len(schemas["UnderstandingRequest"]["properties"]["audio"]["oneOf"]) == 3
    methods = [b["properties"]["inputMethod"]["const"] for b in schemas["ExtractRequest"]["oneOf"]]
    assert methods == ["url", "base64", "file_id"]


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.operation_id)
def test_errors_are_declared_in_the_routes_own_contract_shape(route: Route) -> None:
    responses = _operation(route)["responses"]
    expected = "MessageError" if route.errors == "extract-audio" else "ErrorEnvelope"
    for status in declared_errors(route):
        schema = responses[str(status)]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{expected}"}
    if route.auth:
        assert {"401", "429"} <= set(responses)


def test_model_fields_list_what_the_catalog_serves() -> None:
    catalog = cached_catalog(Settings().resolved_catalog())
    schemas = build_openapi(catalog)["components"]["schemas"]
    transcription = [n for m in catalog.models if m.kind == "transcription" for n in (m.sku, *m.aliases)]
    assert sorted(schemas["TranscriptionForm"]["properties"]["model"]["enum"]) == sorted(transcription)
    assert "diarized_json" not in schemas["TranslationForm"]["properties"]["response_format"]["enum"]
