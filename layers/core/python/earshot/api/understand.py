"""``POST /v1/audio/understand``: a question about how the audio sounds."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response

from earshot.http.app import json_response
from earshot.http.billing import billing_block, billing_headers
from earshot.http.forms import read_form
from earshot.http.request import ApiRequest
from earshot.runtime import get_runtime
from earshot.schemas import UnderstandBilling, UnderstandForm, UnderstandResponse
from earshot.services.audio_source import from_upload_or_url
from earshot.services.understand import Question, understand


def create_understanding(request: ApiRequest) -> Response[str]:
    principal = request.principal()
    runtime = get_runtime()
    parsed = read_form(request, UnderstandForm, limit=runtime.settings.max_inline_bytes, file_required=False)
    form = parsed.form
    deadline = request.deadline_sec(default=runtime.settings.request_timeout_sec)
    audio = from_upload_or_url(runtime, data=form.file, filename=parsed.filename, url=form.url, deadline_sec=deadline)
    outcome = understand(
        runtime,
        principal,
        request.request_id,
        Question(
            audio=audio,
            question=form.question,
            model=form.model,
            duration_hint_sec=form.duration_sec,
            deadline_sec=deadline,
        ),
    )
    bill = billing_block(outcome)
    return json_response(
        UnderstandResponse(
            answer=outcome.result.text,
            model=outcome.model.sku,
            billing=UnderstandBilling.model_validate(bill.model_dump()),
        ),
        headers=billing_headers(outcome),
    )
