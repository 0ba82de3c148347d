"""What a job kind is: a plan to run (refusals first) and a render of the finished run to a neutral result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from earshot.services.charged_run import ChargedRun, Plan

JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class Rendered:
    """A finished run as the client sees it, with no HTTP in it.

    ``body`` is a JSON value when ``content_type`` is JSON, else text; ``headers`` carry the billing
    (``X-Earshot-*``). ``api/`` answers it as an HTTP response; a workflow step stores ``body`` as the
    task's result.
    """

    body: Any
    content_type: str = JSON_CONTENT_TYPE
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_json(self) -> bool:
        return self.content_type.startswith(JSON_CONTENT_TYPE)


def rendered_json(model: BaseModel | dict[str, Any], *, headers: dict[str, str] | None = None) -> Rendered:
    body = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
    return Rendered(body=body, headers=headers or {})


@dataclass(frozen=True)
class Prepared:
    """A kind made ready: the ``Plan`` to run, and how to render its ``ChargedRun``."""

    plan: Plan[Any]
    render: Callable[[ChargedRun[Any]], Rendered]
