"""Every route's OpenAPI examples are real: each validates against the route's own request and answer models."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from earshot.openapi import build_openapi
from earshot.routes import ROUTES, Route


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.operation_id)
def test_every_route_has_an_answer_example_and_a_request_example_when_it_takes_a_body(route: Route) -> None:
    assert route.examples is not None and route.examples.response is not None
    operation = build_openapi()["paths"][route.path][route.method.lower()]
    answer = next(iter(operation["responses"][str(route.success_status)]["content"].values()))
    assert answer["example"] == route.examples.response
    if route.request_model is not None:
        assert route.examples.request is not None
        assert operation["requestBody"]["content"][route.request_content_type]["example"] == route.examples.request


@pytest.mark.parametrize("route", [r for r in ROUTES if r.responses], ids=lambda route: route.operation_id)
def test_answer_examples_validate_against_the_route_models(route: Route) -> None:
    assert route.examples is not None
    errors: list[ValidationError] = []
    for model in route.responses:
        try:
            model.model_validate(route.examples.response)
            return
        except ValidationError as error:
            errors.append(error)
    pytest.fail(f"{route.operation_id}: the example matches none of its models: {errors}")


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r.request_model is not None], ids=lambda route: route.operation_id
)
def test_request_examples_validate_against_the_request_model(route: Route) -> None:
    assert route.examples is not None and route.request_model is not None
    request = dict(route.examples.request)
    if route.request_content_type.startswith("multipart/") and "file" in request:
        request["file"] = b"RIFF"  # a form's file part, named in the example
    route.request_model.model_validate(request)
