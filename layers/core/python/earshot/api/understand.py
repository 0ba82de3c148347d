"""``POST /v1/audio/understand``: a question about how the audio sounds."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.engines.providers import GenerationResult
from earshot.http.app import json_response
from earshot.http.billing import billing_block, billing_headers
from earshot.http.forms import read_form
from earshot.http.request import ApiRequest
from earshot.jobs.kinds import Prepared
from earshot.runtime import Runtime, get_runtime
from earshot.schemas import UnderstandBilling, UnderstandForm, UnderstandResponse
from earshot.services.metered import Metered
from earshot.services.understand import Question, plan_understand


def create_understanding(request: ApiRequest) -> Response[str]:
    from earshot.api.processing import form_audio, process

    runtime = get_runtime()
    request.principal()
    parsed = read_form(request, UnderstandForm, limit=runtime.settings.max_inline_bytes, file_required=False)
    form = parsed.form

    options = form.model_dump(mode="json", exclude={"file", "url", "file_id"})
    return process(
        request,
        kind="understand",
        options=options,
        audio=form_audio(request, form, parsed.filename),
        audio_url=form.url,
        file_id=form.file_id,
        controls=parsed.controls,
    )


def prepare_understand(runtime: Runtime, options: dict[str, Any], deadline_sec: float) -> Prepared:
    form = UnderstandForm.model_validate(options)
    plan = plan_understand(
        runtime,
        Question(
            question=form.question,
            model=form.model,
            duration_hint_sec=form.duration_sec,
            deadline_sec=deadline_sec,
        ),
    )
    return Prepared(plan=plan, render=_render)


def _render(outcome: Metered[GenerationResult]) -> Response[str]:
    bill = billing_block(outcome)
    return json_response(
        UnderstandResponse(
            answer=outcome.result.text,
            model=outcome.model.sku,
            billing=UnderstandBilling.model_validate(bill.model_dump()),
        ),
        headers=billing_headers(outcome),
    )
