"""``POST /v1/uploads``: a presigned upload for audio above the inline limit (optionally self-processing)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.http.app import json_response
from earshot.http.request import ApiRequest
from earshot.http.validation import json_body, parse_model
from earshot.runtime import get_runtime
from earshot.schemas import UploadRequestBody
from earshot.services.accounts import audio_account
from earshot.services.uploads import create_upload, describe


def create_upload_url(request: ApiRequest) -> Response[str]:
    principal = request.principal()
    runtime = get_runtime()
    audio_account(runtime.store, principal)
    body = parse_model(UploadRequestBody, json_body(request))
    record, presigned = create_upload(runtime, principal, body)
    document = describe(record, presigned)
    if document["upload"]["url"].startswith("/"):  # the local server's own upload URL: make it absolute
        host = request.headers.get("host", "127.0.0.1")
        document["upload"]["url"] = f"http://{host}{document['upload']['url']}"
    return json_response(document, status=201)
