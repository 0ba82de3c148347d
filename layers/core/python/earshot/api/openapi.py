"""``GET /openapi.json``: public, no key needed."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.http.app import json_response
from earshot.http.request import ApiRequest
from earshot.openapi import build_openapi


def get_openapi(request: ApiRequest) -> Response[str]:
    """The document, with the model names this deployment's catalog serves (read without the stores)."""
    from earshot.catalog import cached_catalog
    from earshot.config import get_settings

    catalog = cached_catalog(get_settings().resolved_catalog())
    return json_response(build_openapi(catalog), headers={"Cache-Control": "public, max-age=300"})
