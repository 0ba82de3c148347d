"""The sample events in events/ cover the route manifest and look like what API Gateway sends; the event-driven
functions have theirs too: an S3 ObjectCreated notification for ingest, a step payload for the workflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from infra_synth import REPO_ROOT

from earshot.blob_layout import INBOX_PREFIX
from earshot.http.request import ApiRequest
from earshot.keys import is_well_formed
from earshot.routes import EVENT_FUNCTIONS, ROUTES
from earshot.services.uploads import s3_event_records
from earshot.workflow import WORKFLOW, dispatch_step

EVENTS = REPO_ROOT / "events"
MAX_EVENT_BYTES = 8 * 1024
# Events of the functions no route invokes, by file name prefix (the authorizer's is an API Gateway event).
S3_EVENTS = sorted(EVENTS.glob("ingest-*.json"))
STEP_EVENTS = sorted(EVENTS.glob("workflow-*.json"))
SCHEDULED_EVENTS = sorted(EVENTS.glob("sweeper-*.json"))
API_EVENTS = sorted(set(EVENTS.glob("*.json")) - set(S3_EVENTS) - set(STEP_EVENTS) - set(SCHEDULED_EVENTS))


def _load(path: Path) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(path.read_text())
    return event


def _route_events() -> dict[str, list[dict[str, Any]]]:
    by_route: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(EVENTS.glob("*.json")):
        event = _load(path)
        if "routeKey" in event and event.get("type") != "REQUEST":
            by_route.setdefault(event["routeKey"], []).append({"file": path.name, **event})
    return by_route


def test_every_manifest_route_has_a_sample_event_named_after_its_function() -> None:
    by_route = _route_events()
    for route in ROUTES:
        events = by_route.get(f"{route.method} {route.path}")
        assert events, f"no sample event for {route.method} {route.path}"
        assert all(event["file"].startswith(f"{route.function}-") for event in events)


def test_every_function_has_a_sample_event() -> None:
    named = {path.name.split("-", 1)[0] for path in EVENTS.glob("*.json")}
    assert set(EVENT_FUNCTIONS) | {route.function for route in ROUTES} <= named


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda p: p.name)
def test_events_are_small(path: Path) -> None:
    assert path.stat().st_size <= MAX_EVENT_BYTES


@pytest.mark.parametrize("path", API_EVENTS, ids=lambda p: p.name)
def test_api_events_are_payload_v2_events(path: Path) -> None:
    event = _load(path)
    assert event["version"] == "2.0"
    assert event["requestContext"]["stage"] == "$default"


def test_route_events_with_path_parameters_fill_them_in() -> None:
    for route_key, events in _route_events().items():
        for event in events:
            names = {part[1:-1] for part in route_key.split(" ", 1)[1].split("/") if part.startswith("{")}
            assert set(event.get("pathParameters") or {}) == names, event["file"]
            path = route_key.split(" ", 1)[1]
            for name, value in (event.get("pathParameters") or {}).items():
                path = path.replace(f"{{{name}}}", value)
            assert event["rawPath"] == path, event["file"]


@pytest.mark.parametrize("path", S3_EVENTS, ids=lambda p: p.name)
def test_ingest_events_are_object_created_notifications_under_the_inbox(path: Path) -> None:
    event = _load(path)
    assert {record["eventSource"] for record in event["Records"]} == {"aws:s3"}
    (bucket, key, version), *_ = s3_event_records(event)
    assert bucket and version  # the task id derives from bucket, key and version
    assert key.startswith(INBOX_PREFIX)


@pytest.mark.parametrize("path", STEP_EVENTS, ids=lambda p: p.name)
def test_workflow_events_are_what_the_state_machine_sends(path: Path) -> None:
    event = _load(path)
    assert set(event) == {"step", "state"}
    assert event["step"] in {step.name for step in WORKFLOW.all_steps}
    state = event["state"]
    assert set(state) == {"task_id"}  # references only: what the caller sent lives in the task record
    seen: list[str] = []

    def step(given: dict[str, Any]) -> dict[str, Any]:
        seen.append(given["task_id"])
        return given

    echoed = dispatch_step({event["step"]: step}, event)
    assert echoed == state and seen == [state["task_id"]]


def test_protected_route_events_carry_the_authorizer_context() -> None:
    protected = {f"{route.method} {route.path}" for route in ROUTES if route.auth}
    for route_key, events in _route_events().items():
        for event in events:
            request = ApiRequest.from_event(event)
            if route_key in protected:
                principal = request.principal()
                assert principal.account_id and principal.key_id
                token = event["headers"]["authorization"].removeprefix("Bearer ")
                assert is_well_formed(token)
            else:
                assert "authorizer" not in event["requestContext"]


def test_the_authorizer_event_is_a_simple_request_event() -> None:
    event = _load(EVENTS / "authorizer-request.json")
    assert event["type"] == "REQUEST"
    assert event["identitySource"] == [event["headers"]["authorization"]]


@pytest.mark.parametrize("path", SCHEDULED_EVENTS, ids=lambda p: p.name)
def test_the_sweepers_event_is_an_eventbridge_scheduled_event(path: Path) -> None:
    event = _load(path)
    assert (event["source"], event["detail-type"]) == ("aws.events", "Scheduled Event")
