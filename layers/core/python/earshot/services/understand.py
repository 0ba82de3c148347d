"""Questions about how audio sounds, and structured extraction: both ask an ``AudioQuestionEngine``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from earshot.catalog import CatalogModel
from earshot.engines.providers import GenerationResult
from earshot.errors import SchemaMismatchError
from earshot.runtime import Runtime
from earshot.services.charged_run import Plan
from earshot.user_schema import check_user_schema

# The extract-audio contract: at most 9.5 hours of audio.
EXTRACT_MAX_SECONDS = 34_200.0


@dataclass(frozen=True)
class Question:
    question: str
    model: str
    duration_hint_sec: float | None = None
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    deadline_sec: float = 25.0


def plan_understand(runtime: Runtime, job: Question) -> Plan[GenerationResult]:
    """Answer ``job.question`` about the audio with an understanding SKU."""
    model = runtime.catalog.resolve_audio(job.model, ("understanding",))
    engine = runtime.question_engine(model)
    return Plan(
        model=model,
        duration_hint_sec=job.duration_hint_sec,
        work=lambda path, _metered: engine.ask(
            path,
            job.question,
            system=job.system,
            max_tokens=job.max_tokens,
            temperature=job.temperature,
            deadline_sec=job.deadline_sec,
        ),
        label="understand",
    )


@dataclass(frozen=True)
class Extraction:
    value: Any  # str, or the JSON value in JSON mode
    generation: GenerationResult


def _parse_json(text: str) -> Any:
    cleaned = text.strip()
    if cleaned.startswith("```"):  # models like to fence JSON
        cleaned = cleaned.strip("`").removeprefix("json").strip()
    return json.loads(cleaned)


def plan_extract(
    runtime: Runtime,
    *,
    prompt: str,
    model_name: str,
    json_mode: bool,
    schema: dict[str, Any] | None,
    deadline_sec: float,
) -> Plan[Extraction]:
    """Extract what ``prompt`` asks for; with ``schema`` the result is validated, repaired once, else 422."""
    checked = check_user_schema(schema) if schema is not None else None  # before any charge: 400s only
    if checked is not None:
        json_mode = True
    model: CatalogModel = runtime.catalog.resolve_audio(model_name, ("extraction",))
    engine = runtime.question_engine(model)

    def work(path: Any, _metered: Any) -> Extraction:
        instruction = prompt
        if schema is not None:
            instruction += "\nAnswer with JSON that satisfies this JSON Schema:\n" + json.dumps(schema)
        result = engine.ask(path, instruction, json_mode=json_mode, deadline_sec=deadline_sec)
        if not json_mode:
            return Extraction(result.text, result)
        try:
            value = _parse_json(result.text)
        except ValueError:
            value, errors = None, ["the answer was not valid JSON"]
        else:
            errors = checked.errors(value) if checked is not None else []
        if errors:  # one repair attempt: show the model what was wrong
            repair = (
                f"{instruction}\nYour previous answer was:\n{result.text}\nIt was invalid: {'; '.join(errors[:10])}."
                " Answer again with corrected JSON only."
            )
            result = engine.ask(path, repair, json_mode=True, deadline_sec=deadline_sec)
            try:
                value = _parse_json(result.text)
            except ValueError as exc:
                raise SchemaMismatchError("the model did not produce valid JSON, even after one repair") from exc
            errors = checked.errors(value) if checked is not None else []
            if errors:
                raise SchemaMismatchError(
                    "the result does not match the schema after one repair: " + "; ".join(errors[:5]), param="schema"
                )
        return Extraction(value, result)

    return Plan(model=model, work=work, label="extract", max_seconds=EXTRACT_MAX_SECONDS)
