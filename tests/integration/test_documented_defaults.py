"""The reference documents' defaults and field formats, and bounded headers on the task routes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gateway_requests import call, form

from earshot.local.server import GatewayResponse
from earshot.runtime import get_runtime
from earshot.services.accounts import NewKey, create_key


@pytest.fixture
def account(data_dir: Path) -> NewKey:
    return create_key(get_runtime().store, name="t", balance_micro_usd=1_000_000)


def _transcribe(account: NewKey, fields: dict[str, str]) -> GatewayResponse:
    body, content_type = form(fields)
    return call("POST", "/v1/audio/transcriptions", account.secret, body, content_type)


def test_response_format_defaults_to_verbose_json(account: NewKey) -> None:
    response = _transcribe(account, {"model": "transcribe", "language": "en"})
    assert response.status == 200, response.body
    payload = json.loads(response.body)
    assert payload["task"] == "transcribe" and "segments" in payload and "duration" in payload
    assert payload["language"] == "English"  # the full name, as the document shows it


def test_json_when_asked_for(account: NewKey) -> None:
    payload = json.loads(_transcribe(account, {"response_format": "json"}).body)
    assert "segments" not in payload and "text" in payload


def _task(account: NewKey) -> str:
    response = _transcribe(account, {"async": "true"})
    assert response.status == 202, response.body
    return str(json.loads(response.body)["id"])


@pytest.mark.parametrize("value", ["1" * 30, "²", "-1", "1e9", "0x10", "9" * 16])
def test_last_event_id_out_of_bounds_is_400(account: NewKey, value: str) -> None:
    task_id = _task(account)
    response = call("GET", f"/v1/tasks/{task_id}/events", account.secret, headers={"Last-Event-ID": value})
    assert response.status == 400, response.body
    assert json.loads(response.body)["error"]["code"] == "invalid_request"


def test_a_valid_last_event_id_resumes(account: NewKey) -> None:
    task_id = _task(account)
    get_runtime()._extras["jobs"].wait_idle()
    response = call("GET", f"/v1/tasks/{task_id}/events", account.secret, headers={"Last-Event-ID": "1"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert "id: 1\n" not in response.body.decode()
