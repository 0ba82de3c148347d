"""The sample events in events/ cover the route manifest and look like what API Gateway sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from infra_synth import REPO_ROOT

from earshot.http.request import ApiRequest
from earshot.keys import is_well_formed
from earshot.routes import ROUTES

EVENTS = REPO_ROOT / "events"
MAX_EVENT_BYTES = 8 * 1024


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


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda p: p.name)
def test_events_are_small_payload_v2_events(path: Path) -> None:
    assert path.stat().st_size <= MAX_EVENT_BYTES
    event = _load(path)
    assert event["version"] == "2.0"
    assert event["requestContext"]["stage"] == "$default"


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
