"""The inference function's logic (``functions/inference``): the embedded engines, on audio that arrives inline or
by blob key, and the workflow steps that run engines.

Two kinds of event reach it:

- an ``InferenceCall`` from an API function's ``Remote*Engine`` (``earshot.engines.remote``): one engine call on one
  piece of audio, answered as JSON;
- a workflow step payload ``{"step": ..., "state": ...}`` from the state machine, for the steps that run engines
  (``ENGINE_STEPS``): the state machine invokes this function for them directly, as a task.

Locally nothing calls it over the wire: the engines run in-process, and ``InProcessInvoker`` stands in for the
invoke where a caller wants the same JSON round trip (tests, the local fan-out).
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from typing import Any

from earshot.audio.budget import decode_budget
from earshot.engines.remote import InferenceCall, decoded_inline, run_call
from earshot.errors import InvalidRequestError, NotFoundError
from earshot.runtime import Runtime
from earshot.services.audio_input import staged_audio, staged_blob
from earshot.workflow import ENGINE_STEPS  # the workflow steps the state machine sends here

__all__ = ["ENGINE_STEPS", "InProcessInvoker", "handle_inference"]


def handle_inference(runtime: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """Answer one event of the inference function (an engine call or an engine step)."""
    if "step" in event:
        if event.get("step") not in ENGINE_STEPS:
            raise InvalidRequestError(
                f"the inference function runs {', '.join(ENGINE_STEPS)}, not {event.get('step')!r}"
            )
        from earshot.jobs.steps import registry
        from earshot.workflow import dispatch_step

        return dispatch_step(registry(runtime), event)
    call = InferenceCall.from_payload(event)
    model = runtime.catalog.find(call.sku)
    if model is None or not model.provider.startswith("embedded:"):
        raise NotFoundError(f"no embedded model {call.sku!r} in this deployment's catalog")
    engine = runtime.transcription_engine(model) if call.role == "transcription" else runtime.question_engine(model)
    filename = call.audio.get("filename", "")
    # The caller's budget (what was metered and billed) bounds every decoder here as it does in the API function.
    with decode_budget(call.budget_sec) if call.budget_sec is not None else nullcontext():
        if "blob_key" in call.audio:
            with staged_blob(runtime.blobs, call.audio["blob_key"], filename) as path:
                return run_call(engine, call, path)
        with staged_audio(decoded_inline(call.audio), filename) as path:
            return run_call(engine, call, path)


class InProcessInvoker:
    """``Invoker`` that runs the inference logic in this process, with the same JSON round trip and error names."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def invoke(self, payload: dict[str, Any], *, timeout_sec: float) -> dict[str, Any]:
        answer = handle_inference(self._runtime, json.loads(json.dumps(payload)))
        decoded: dict[str, Any] = json.loads(json.dumps(answer))
        return decoded
