"""The understand kind (``POST /v1/audio/understand``): a question about how the audio sounds."""

from __future__ import annotations

from typing import Any

from earshot.engines.providers import GenerationResult
from earshot.kinds.base import Prepared, Rendered, rendered_json
from earshot.kinds.billing import billing_block, billing_headers
from earshot.runtime import Runtime
from earshot.schemas import UnderstandBilling, UnderstandForm, UnderstandResponse
from earshot.services.charged_run import ChargedRun
from earshot.services.understand import Question, plan_understand


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


def _render(outcome: ChargedRun[GenerationResult]) -> Rendered:
    bill = billing_block(outcome)
    return rendered_json(
        UnderstandResponse(
            answer=outcome.result.text,
            model=outcome.model.sku,
            billing=UnderstandBilling.model_validate(bill.model_dump()),
        ),
        headers=billing_headers(outcome),
    )
