"""Lambda's execution model, emulated: concurrent invocations of one function never share module globals.

Lambda runs one invocation at a time per execution environment and gives concurrent invocations their own; handler
code relies on it (a Powertools resolver keeps the event it is resolving on itself, in a module global). The local
server's worker threads each load their own copy of a function's module, so a request can never read another's
event, context or body mid-flight.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.adapters.local_lambda import LocalContext, load_handler
from earshot.errors import NotFoundError
from earshot.http.request import ApiRequest
from earshot.local.events import http_event

# A handler that keeps its invocation's event in a module global (as the Powertools resolver does), then reads it
# back after every concurrent invocation has written its own.
HANDLER = """
current = {}


def lambda_handler(event, context):
    current["event"] = event
    event["barrier"].wait()  # every concurrent invocation has set the global
    return {"seen": current["event"]["id"], "module": id(current)}
"""


@pytest.fixture
def functions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "echo").mkdir()
    (tmp_path / "echo" / "handler.py").write_text(HANDLER)
    monkeypatch.setenv("EARSHOT_FUNCTIONS_DIR", str(tmp_path))
    return tmp_path


def test_concurrent_invocations_each_see_their_own_event(functions: Path) -> None:
    results: dict[str, dict[str, Any]] = {}
    barrier = threading.Barrier(2, timeout=10)

    def invoke(name: str) -> None:
        results[name] = load_handler("echo")({"id": name, "barrier": barrier}, LocalContext("echo"))

    threads = [threading.Thread(target=invoke, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert results["first"]["seen"] == "first"
    assert results["second"]["seen"] == "second"
    assert results["first"]["module"] != results["second"]["module"]  # two environments


def test_one_thread_keeps_its_environment_warm(functions: Path) -> None:
    """Invocations on one thread reuse its loaded module (a warm start), as Lambda reuses an environment."""
    assert load_handler("echo") is load_handler("echo")


def test_an_unknown_function_is_a_lookup_error(functions: Path) -> None:
    with pytest.raises(LookupError, match="no function 'absent'"):
        load_handler("absent")


def test_concurrent_requests_to_one_function_are_each_resolved_from_their_own_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two requests in flight in one function (the models function, its endpoint held until both are inside it):
    each is answered from its own event. Powertools keeps the event being resolved on ``BaseRouter``, a class every
    resolver shares; with it there, both answers carried the request id of whichever request arrived last."""
    barrier = threading.Barrier(2, timeout=10)

    def held(_request: ApiRequest) -> Response[str]:
        barrier.wait()  # both requests are being resolved
        raise NotFoundError("held")  # answered in the envelope, with the request id the resolver holds

    monkeypatch.setattr("earshot.api.models.list_models", held)  # read when each thread loads its handler
    answers: dict[str, str] = {}

    def request(name: str) -> None:
        event = http_event(method="GET", path="/v1/models", route_key="GET /v1/models", headers={}, body=b"")
        answer = load_handler("models")(event, LocalContext("models"))
        answers[name] = json.loads(answer["body"])["error"]["request_id"] + "|" + event["requestContext"]["requestId"]

    threads = [threading.Thread(target=request, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(answers) == 2
    for answer in answers.values():
        answered, sent = answer.split("|")
        assert answered == sent
