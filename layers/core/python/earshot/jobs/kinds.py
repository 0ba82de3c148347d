"""Job kinds: how each processing route is prepared (refusals first) and how its result is rendered.

A kind's ``prepare`` takes the JSON-able options of a request (everything but the audio) and returns
a ``Prepared``: the ``Plan`` to run and the function that renders the finished run as the HTTP response
the sync route answers with. The async workflow stores the same options in the task and, once the
run is done, stores that same rendering as the task's result.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Response
from pydantic import ValidationError

from earshot.errors import InvalidRequestError
from earshot.runtime import Runtime
from earshot.services.metered import Metered, Plan


@dataclass(frozen=True)
class Prepared:
    plan: Plan[Any]
    render: Callable[[Metered[Any]], Response[str]]


Prepare = Callable[[Runtime, dict[str, Any], float], Prepared]

# kind -> "module:function" of its prepare, imported only by the function that serves it.
KINDS: dict[str, str] = {
    "transcription": "earshot.api.transcriptions:prepare_transcription",
    "translation": "earshot.api.transcriptions:prepare_translation",
    "transcribev2": "earshot.api.v2_transcribe:prepare_v2",
    "understand": "earshot.api.understand:prepare_understand",
    "extract": "earshot.api.extract:prepare_extract",
    "llm": "earshot.api.understanding:prepare_llm",
}


def prepare(runtime: Runtime, kind: str, options: dict[str, Any], *, deadline_sec: float) -> Prepared:
    """The kind's ``Prepared``; options that do not validate are a 400 naming the field."""
    if kind not in KINDS:
        raise InvalidRequestError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}", param="kind")
    module_name, attribute = KINDS[kind].split(":", 1)
    prepare_kind: Prepare = getattr(importlib.import_module(module_name), attribute)
    try:
        return prepare_kind(runtime, options, deadline_sec)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = ".".join(str(part) for part in first.get("loc") or ()) or None
        raise InvalidRequestError(f"invalid option {param!r}: {first.get('msg')}", param=param) from exc


def response_result(response: Response[Any]) -> Any:
    """A rendered response as a task result: JSON bodies as JSON values, text formats as strings."""
    body = response.body if isinstance(response.body, str) else bytes(response.body or b"").decode()
    if (response.content_type or "").startswith("application/json"):
        return json.loads(body)
    return body
