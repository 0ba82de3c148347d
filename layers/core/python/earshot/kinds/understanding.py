"""The llm kind (``POST /v1/audio/understanding``): ``results[0]`` is an OpenAI ChatCompletion."""

from __future__ import annotations

import secrets
import time
from typing import Any

from earshot.engines.providers import GenerationResult
from earshot.kinds.base import Prepared, Rendered
from earshot.kinds.billing import billing_block
from earshot.runtime import Runtime
from earshot.schemas import UnderstandingRequest
from earshot.services.charged_run import ChargedRun
from earshot.services.understand import Question, plan_understand


def prepare_llm(runtime: Runtime, options: dict[str, Any], deadline_sec: float) -> Prepared:
    body = UnderstandingRequest.model_validate({**options, "audio": "-"})
    plan = plan_understand(
        runtime,
        Question(
            question=body.prompt,
            model=body.model,
            system=body.system,
            max_tokens=body.max_tokens,
            temperature=body.temperature,
            deadline_sec=deadline_sec,
        ),
    )
    return Prepared(plan=plan, render=_chat_completion)


def _chat_completion(outcome: ChargedRun[GenerationResult]) -> Rendered:
    """``results[0]``: the ChatCompletion, its ``model`` the SKU that served it (the task echoes the name asked for)."""
    result = outcome.result
    completion = {
        "id": f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": outcome.model.sku,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
        },
        "billing": billing_block(outcome).model_dump(mode="json"),
    }
    return Rendered(body=completion)


def completion_chunk(completion: dict[str, Any]) -> dict[str, Any]:
    """A ChatCompletion as the single ``chat.completion.chunk`` a stream subscriber receives."""
    choice = (completion.get("choices") or [{}])[0]
    return {
        "id": completion.get("id"),
        "object": "chat.completion.chunk",
        "created": completion.get("created"),
        "model": completion.get("model"),
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": (choice.get("message") or {}).get("content", "")},
                "finish_reason": choice.get("finish_reason"),
            }
        ],
    }
