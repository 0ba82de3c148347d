"""The v2 transcription kind (``POST /api/v2/Audio/transcribe``)."""

from __future__ import annotations

import uuid
from typing import Any

from earshot.billing import usd
from earshot.engines.base import Transcript
from earshot.kinds.base import Prepared, Rendered, rendered_json
from earshot.kinds.billing import billing_headers
from earshot.render import full_language_name
from earshot.runtime import Runtime
from earshot.schemas import V2Cost, V2Metadata, V2TokenUsage, V2TranscribeForm, V2TranscribeResponse
from earshot.services.charged_run import ChargedRun
from earshot.services.transcription import TranscriptionJob, plan_transcription


def prepare_v2(runtime: Runtime, options: dict[str, Any], deadline_sec: float) -> Prepared:
    form = V2TranscribeForm.model_validate({**options, "file": b""})
    plan = plan_transcription(
        runtime, TranscriptionJob(model=form.model, prompt=form.prompt, deadline_sec=deadline_sec)
    )
    return Prepared(plan=plan, render=_render)


def _render(outcome: ChargedRun[Transcript]) -> Rendered:
    cost = usd(outcome.cost_micro_usd)
    # Audio models bill by the minute, not by tokens: the whole charge is the "prompt" (input) side.
    return rendered_json(
        V2TranscribeResponse(
            instanceId=str(uuid.uuid4()),
            transcript=outcome.result.text,
            metadata=V2Metadata(
                language=full_language_name(outcome.result.language), duration=f"{outcome.billed_seconds:.3f}"
            ),
            tokenUsage=V2TokenUsage(completionTokens=0, promptTokens=0, totalTokens=0),
            cost=V2Cost(completion=0.0, prompt=cost, total=cost, currency="USD"),
        ),
        headers=billing_headers(outcome),
    )
