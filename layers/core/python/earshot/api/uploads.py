"""``POST /v1/uploads``: a presigned upload for audio above the inline limit (optionally self-processing)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.config import DEFAULT_LOCAL_BASE_URL, get_settings
from earshot.http.app import json_response
from earshot.http.request import ApiRequest
from earshot.http.validation import json_body, parse_model
from earshot.kinds import prepare
from earshot.runtime import get_runtime
from earshot.schemas import UploadRequestBody
from earshot.services.accounts import audio_account
from earshot.services.uploads import create_upload, describe, process_options


def create_upload_url(request: ApiRequest) -> Response[str]:
    principal = request.principal()
    runtime = get_runtime()
    audio_account(runtime.store, principal)
    body = parse_model(UploadRequestBody, json_body(request))
    if body.process is not None:
        # Refuse a process spec that could never run (unknown model, bad options) now, not after the upload.
        prepare(runtime, body.process.kind, process_options(body.process), deadline_sec=60.0)
    record, presigned = create_upload(runtime, principal, body)
    document = describe(record, presigned)
    if document["upload"]["url"].startswith("/"):  # the local server's own upload URL: make it absolute
        # From configuration, never from the Host header (a spoofed Host would hand out a poisoned link).
        base = runtime.settings.public_base_url or get_settings().public_base_url or DEFAULT_LOCAL_BASE_URL
        document["upload"]["url"] = f"{base}{document['upload']['url']}"
    return json_response(document, status=201)
