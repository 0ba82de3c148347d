"""extract-audio's ``schema`` never reads a local file or reaches a host: references resolve inside it only."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_requests import GATEWAY, WAV_B64, balance, extract

from earshot.local.server import GatewayResponse
from earshot.runtime import get_runtime, reset_runtime
from earshot.services.accounts import NewKey, create_key
from earshot.user_schema import check_user_schema, closed_registry

START = 1_000_000


class Listener:
    """A loopback TCP listener that records every connection made to it (and answers none)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    running = Listener()
    yield running
    running.close()


@pytest.fixture
def account(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> NewKey:
    monkeypatch.setenv("EARSHOT_ALLOW_LOOPBACK_URLS", "true")  # the worst case: loopback audio URLs allowed
    reset_runtime()
    return create_key(get_runtime().store, name="t", balance_micro_usd=START)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.json"
    path.write_text(json.dumps({"type": "string", "description": "TOP-SECRET-CONTENT"}))
    return path


def _refused(response: GatewayResponse) -> str:
    assert response.status == 400, response.body
    body = json.loads(response.body)
    message = body["error"] if isinstance(body["error"], str) else body["error"]["message"]
    return str(message)


@pytest.fixture
def no_open(monkeypatch: pytest.MonkeyPatch, secret_file: Path) -> list[str]:
    """Record any attempt to open the secret file or to fetch through urllib (jsonschema's old fallback)."""
    import builtins
    import urllib.request

    opened: list[str] = []
    real_open = builtins.open

    def spy_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(secret_file) in str(file):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def spy_urlopen(url: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(getattr(url, "full_url", url)))
        raise AssertionError("urlopen must never be called")

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(urllib.request, "urlopen", spy_urlopen)
    return opened


def test_a_file_ref_is_refused_and_nothing_is_read(account: NewKey, secret_file: Path, no_open: list[str]) -> None:
    for schema in (
        {"$ref": secret_file.as_uri()},
        {"type": "object", "properties": {"x": {"$ref": secret_file.as_uri() + "#/description"}}},
        {"$id": "file:///", "$ref": str(secret_file)},  # a relative reference against a file: base
        {"$dynamicRef": secret_file.as_uri()},
    ):
        message = _refused(extract(account, schema))
        assert "TOP-SECRET" not in message
        assert "refused" in message or "resolve" in message
    assert no_open == []
    assert balance(account) == START


def test_an_http_ref_to_loopback_is_refused_and_never_connected(account: NewKey, listener: Listener) -> None:
    base = f"http://127.0.0.1:{listener.port}"
    for schema in (
        {"$ref": f"{base}/schema.json"},
        {"properties": {"a": {"$ref": f"{base}/schema.json#/x"}}},
        {"$id": f"{base}/root.json", "$ref": "other.json"},  # relative to a loopback base
        {"$id": f"{base}/root.json", "properties": {"a": {"$ref": f"{base}/elsewhere.json"}}},
        {"allOf": [{"$ref": f"https://127.0.0.1:{listener.port}/s.json"}]},
    ):
        _refused(extract(account, schema))
    for schema in (  # the same schemas on the async route: refused before any task exists
        {"$ref": f"{base}/schema.json"},
    ):
        response = extract(account, schema, **{"async": True})
        _refused(response)
    assert listener.connections == 0
    assert balance(account) == START


def test_the_validator_itself_retrieves_nothing(listener: Listener, secret_file: Path) -> None:
    """Even a reference that got past the up-front check resolves against nothing outside the document."""
    import jsonschema
    from referencing.exceptions import Unresolvable

    for ref in (f"http://127.0.0.1:{listener.port}/s.json", secret_file.as_uri()):
        validator = jsonschema.Draft202012Validator({"$ref": ref}, registry=closed_registry())
        with pytest.raises(Unresolvable):
            list(validator.iter_errors("x"))
    assert listener.connections == 0


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#/$defs/missing"},
        {"$ref": "#"},
        {"allOf": [{"$ref": "#"}]},
        {"$ref": "#no-such-anchor"},
        {"properties": {"a": {"type": "string"}}, "description": "x" * 70_000},
        "not an object",
    ],
)
def test_broken_or_oversized_schemas_are_400_and_free(account: NewKey, schema: Any) -> None:
    _refused(extract(account, schema))
    assert balance(account) == START


def test_a_schema_nested_5000_deep_is_400(account: NewKey) -> None:
    text = '{"items":' * 5000 + "{}" + "}" * 5000
    body = f'{{"inputMethod": "base64", "audio": "{WAV_B64}", "prompt": "p", "schema": {text}}}'.encode()
    response = GATEWAY.handle(
        method="POST",
        path="/api/v1/extract-audio",
        raw_query="",
        headers={"Authorization": f"Bearer {account.secret}", "Content-Type": "application/json"},
        body=body,
    )
    assert "nested" in _refused(response)
    assert balance(account) == START


def test_a_schema_just_over_the_depth_limit_is_400(account: NewKey) -> None:
    schema: dict[str, Any] = {}
    for _ in range(40):
        schema = {"items": schema}
    assert "nested" in _refused(extract(account, schema))


def test_references_inside_the_document_still_work(account: NewKey) -> None:
    schema = {
        "$id": "https://schemas.example/extract.json",
        "$defs": {"share": {"$anchor": "share", "type": "number"}, "obj": {"type": "object"}},
        "allOf": [{"$ref": "#/$defs/obj"}],
        "properties": {"speech_share": {"$ref": "#share"}},
    }
    response = extract(account, schema)
    assert response.status in (200, 422), response.body  # the embedded extractor may or may not fit the schema
    assert balance(account) <= START


def _doubling(levels: int) -> dict[str, Any]:
    """Each definition refers twice to the next: 2**levels subschemas to validate, ~60 bytes of schema a level."""
    defs: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]} for i in range(levels)
    }
    defs[f"d{levels}"] = {"type": "object"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


def test_a_schema_whose_references_expand_exponentially_is_400_at_once(account: NewKey) -> None:
    """30 levels of doubling: 2 KB of schema, 2**30 subschemas (hours of validation) if it were accepted."""
    started = time.monotonic()
    assert "expands" in _refused(extract(account, _doubling(30)))
    assert time.monotonic() - started < 5
    assert balance(account) == START


def test_large_schemas_without_a_reference_blowup_are_still_accepted() -> None:
    recursive = {
        "$defs": {
            "node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}
        },
        "$ref": "#/$defs/node",
    }
    assert check_user_schema(recursive).errors({"children": [{"children": []}]}) == []
    wide = {
        "type": "object",
        "properties": {f"p{i}": {"type": "object", "properties": {"v": {"type": "number"}}} for i in range(800)},
    }
    assert check_user_schema(wide).errors({"p1": {"v": 1}}) == []
    assert check_user_schema(_doubling(6)).errors({}) == []
