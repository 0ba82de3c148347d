"""``GET /openapi.json``: public, no key needed."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.http.app import json_response
from earshot.http.request import ApiRequest
from earshot.openapi import build_openapi


def get_openapi(request: ApiRequest) -> Response[str]:
    return json_response(build_openapi(), headers={"Cache-Control": "public, max-age=300"})
