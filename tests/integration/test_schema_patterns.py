"""extract-audio's ``schema`` patterns are matched in linear time (RE2); what RE2 cannot run is a free 400."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from gateway_requests import balance, extract

from earshot.local.server import GatewayResponse
from earshot.runtime import get_runtime, reset_runtime
from earshot.services.accounts import NewKey, create_key
from earshot.user_schema import bounded_validator_class, check_user_schema

START = 1_000_000
EVIL = "^(a+)+$"
# Python's re backtracks 2**38 ways before it says no; RE2 answers in one pass.
EVIL_TEXT = "a" * 38 + "!"


@pytest.fixture
def account(data_dir: Path) -> NewKey:
    reset_runtime()
    return create_key(get_runtime().store, name="t", balance_micro_usd=START)


def _refused(response: GatewayResponse) -> str:
    assert response.status == 400, response.body
    body = json.loads(response.body)
    assert isinstance(body["error"], str), body  # extract-audio's contract: {"error": "..."}
    return str(body["error"])


def test_the_validator_is_the_bounded_one_for_every_draft() -> None:
    for draft in ("draft-04", "draft-06", "draft-07", "draft/2019-09", "draft/2020-12"):
        schema = {"$schema": f"https://json-schema.org/{draft}/schema", "pattern": "^a"}
        if not draft.startswith("draft/"):
            schema["$schema"] = f"http://json-schema.org/{draft}/schema#"
        checked = check_user_schema(schema)
        base = jsonschema.validators.validator_for(schema)
        assert type(checked.validator) is bounded_validator_class(base)
        assert type(checked.validator) is not base
        assert checked.validator.format_checker is None  # type: ignore[attr-defined]  # format: regex compiles nothing on engine output


def test_a_catastrophic_pattern_on_a_string_returns() -> None:
    checked = check_user_schema({"type": "object", "properties": {"s": {"type": "string", "pattern": EVIL}}})
    assert checked.errors({"s": EVIL_TEXT}) == [f"s: {EVIL_TEXT!r} does not match {EVIL!r}"]
    assert checked.errors({"s": "aaaa"}) == []


def test_a_catastrophic_pattern_property_returns_in_every_keyword_that_matches_it() -> None:
    checked = check_user_schema(
        {"type": "object", "patternProperties": {EVIL: {"type": "integer"}}, "additionalProperties": False}
    )
    assert checked.errors({EVIL_TEXT: 1}) == [f"(root): {EVIL_TEXT!r} does not match any of the regexes: {EVIL!r}"]
    assert checked.errors({"aaa": "x"}) == ["aaa: 'x' is not of type 'integer'"]
    assert checked.errors({"aaa": 3}) == []


def test_ordinary_patterns_validate_as_before() -> None:
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": r"^[A-Z]{2}-\d{3}$"}, "n": {"type": "integer"}},
        "patternProperties": {"^x-": {"type": "string"}},
        "additionalProperties": {"type": "boolean"},
    }
    checked = check_user_schema(schema)
    reference = jsonschema.Draft202012Validator(schema)
    for value in (
        {"code": "AB-123", "x-note": "hi", "flag": True},
        {"code": "ab-123"},
        {"code": "AB-1234", "x-note": 3, "flag": "no"},
        {"code": "é", "n": 1},
    ):
        assert checked.errors(value) == [
            f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in reference.iter_errors(value)
        ]
    assert check_user_schema({"additionalProperties": False}).errors({"a": 1, "b": 2}) == [
        "(root): Additional properties are not allowed ('a', 'b' were unexpected)"
    ]


def test_pattern_text_inside_data_keywords_is_not_a_pattern() -> None:
    checked = check_user_schema({"const": {"pattern": r"(a)\1"}, "examples": [{"pattern": "(?=x)"}]})
    assert checked.errors({"pattern": r"(a)\1"}) == []


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"type": "string", "pattern": r"^(a)\1$"}, "backreferences"),
        ({"properties": {"s": {"pattern": "a(?=b)"}}}, "lookahead"),
        ({"patternProperties": {"(?<!x)y": {}}}, "lookbehind"),
        ({"patternProperties": {"^a": {}}, "unevaluatedProperties": False}, "unevaluatedProperties"),
    ],
)
def test_patterns_re2_cannot_run_are_400_before_any_charge(account: NewKey, schema: Any, named: str) -> None:
    assert named in _refused(extract(account, schema))
    assert balance(account) == START


def test_a_catastrophic_pattern_is_accepted_and_the_request_completes(account: NewKey) -> None:
    schema = {"type": "object", "properties": {"summary": {"type": "string", "pattern": EVIL}}}
    response = extract(account, schema)
    assert response.status in (200, 422), response.body  # the embedded extractor may or may not fit the schema
