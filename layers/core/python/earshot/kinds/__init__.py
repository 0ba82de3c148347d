"""Job kinds, below both ``api/`` (HTTP) and ``jobs/`` (the workflow): one module per kind.

A kind's ``prepare`` takes the JSON-able options of a request (everything but the audio) and returns a
``Prepared``: the ``Plan`` to run (everything refusable is refused here, before any charge) and the
render of the finished ``ChargedRun`` to a neutral ``Rendered`` result. The sync route answers that
result as HTTP; the workflow stores its body as the task's result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from earshot.errors import InvalidRequestError
from earshot.kinds.base import Prepared, Rendered
from earshot.kinds.extract import prepare_extract
from earshot.kinds.transcription import prepare_transcription, prepare_translation
from earshot.kinds.understand import prepare_understand
from earshot.kinds.understanding import prepare_llm
from earshot.kinds.v2 import prepare_v2
from earshot.runtime import Runtime

Prepare = Callable[[Runtime, dict[str, Any], float], Prepared]

KINDS: dict[str, Prepare] = {
    "transcription": prepare_transcription,
    "translation": prepare_translation,
    "transcribev2": prepare_v2,
    "understand": prepare_understand,
    "extract": prepare_extract,
    "llm": prepare_llm,
}

__all__ = ["KINDS", "Prepared", "Rendered", "prepare"]


def prepare(runtime: Runtime, kind: str, options: dict[str, Any], *, deadline_sec: float) -> Prepared:
    """The kind's ``Prepared``; options that do not validate are a 400 naming the field."""
    prepare_kind = KINDS.get(kind)
    if prepare_kind is None:
        raise InvalidRequestError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}", param="kind")
    try:
        return prepare_kind(runtime, options, deadline_sec)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = ".".join(str(part) for part in first.get("loc") or ()) or None
        raise InvalidRequestError(f"invalid option {param!r}: {first.get('msg')}", param=param) from exc
