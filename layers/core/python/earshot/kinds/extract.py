"""The extract kind (``POST /api/v1/extract-audio``): structured data from audio."""

from __future__ import annotations

from typing import Any

from earshot.billing import extraction_credits
from earshot.kinds.base import Prepared, Rendered, rendered_json
from earshot.kinds.billing import billing_headers
from earshot.runtime import Runtime
from earshot.schemas import ExtractRequest, ExtractResponse
from earshot.services.charged_run import ChargedRun
from earshot.services.understand import Extraction, plan_extract


def prepare_extract(runtime: Runtime, options: dict[str, Any], deadline_sec: float) -> Prepared:
    body = ExtractRequest.model_validate({**options, "inputMethod": "base64", "audio": "-"})
    plan = plan_extract(
        runtime,
        prompt=body.prompt,
        model_name=body.model,
        json_mode=body.jsonMode,
        schema=body.schema_,
        deadline_sec=deadline_sec,
    )
    return Prepared(plan=plan, render=lambda outcome: _render(outcome, body.prompt))


def _render(outcome: ChargedRun[Extraction], prompt: str) -> Rendered:
    return rendered_json(
        ExtractResponse(
            results=outcome.result.value,
            prompt=prompt,
            audioDuration=round(outcome.billed_seconds, 3),
            creditUsage=extraction_credits(outcome.billed_seconds),
        ),
        headers=billing_headers(outcome),
    )
