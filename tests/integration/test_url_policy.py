"""One address policy for every URL a caller gives: refused up front (no task, no charge), checked again at use."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from gateway_requests import balance, call
from hostile_http import BAD_SCHEMES, INTERNAL
from test_schema_refs import Listener

from earshot.runtime import get_runtime, reset_runtime
from earshot.services.accounts import NewKey, create_key

START = 1_000_000


@pytest.fixture
def account(data_dir: Path) -> NewKey:
    return create_key(get_runtime().store, name="t", balance_micro_usd=START)


def _form(fields: dict[str, str]) -> bytes:
    out = b"".join(
        f'--B\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    return out + b"--B--\r\n"


def _tasks(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "earshot.db") as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])
        except sqlite3.OperationalError:  # the task tables are created on first use
            return 0


def _requests(url: str, *, asynchronous: bool) -> list[tuple[str, bytes, str]]:
    """(path, body, content type) of every route that takes an audio URL."""
    flag = {"async": "true"} if asynchronous else {}
    form = "multipart/form-data; boundary=B"
    extract: dict[str, Any] = {"inputMethod": "url", "audio": url, "prompt": "p", **({"async": True} if flag else {})}
    return [
        ("/v1/audio/transcriptions", _form({"url": url, **flag}), form),
        ("/v1/audio/translations", _form({"url": url, **flag}), form),
        ("/v1/audio/understand", _form({"url": url, "question": "q", **flag}), form),
        ("/api/v1/extract-audio", json.dumps(extract).encode(), "application/json"),
        ("/v1/audio/understanding", json.dumps({"audio": url, "prompt": "p"}).encode(), "application/json"),
    ]


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("url", BAD_SCHEMES + INTERNAL)
def test_audio_urls_are_refused_up_front(account: NewKey, data_dir: Path, url: str, asynchronous: bool) -> None:
    for path, body, content_type in _requests(url, asynchronous=asynchronous):
        response = call("POST", path, account.secret, body, content_type)
        assert response.status == 400, (path, url, response.body)
        payload = json.loads(response.body)
        assert payload["error"], (path, payload)
    assert _tasks(data_dir) == 0
    assert balance(account) == START


def test_ftp_on_the_understanding_route_is_400_and_leaves_no_task(account: NewKey, data_dir: Path) -> None:
    body = json.dumps({"audio": "ftp://example.com/a.wav", "prompt": "what is it?"}).encode()
    response = call("POST", "/v1/audio/understanding", account.secret, body, "application/json")
    assert response.status == 400
    error = json.loads(response.body)["error"]
    assert error["code"] == "invalid_request" and error["param"] == "audio"
    assert "https" in error["message"]
    assert _tasks(data_dir) == 0


@pytest.mark.parametrize("url", BAD_SCHEMES + INTERNAL)
def test_callback_urls_are_refused_on_async_routes(account: NewKey, data_dir: Path, url: str) -> None:
    from audio_fixtures import audio_bytes

    wav = audio_bytes("wav", 1.0, sample_rate=16000)
    head = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n' + wav + b"\r\n"
    body = head + _form({"async": "true", "callback_url": url})
    response = call("POST", "/v1/audio/transcriptions", account.secret, body, "multipart/form-data; boundary=B")
    assert response.status == 400, response.body
    assert json.loads(response.body)["error"]["param"] == "callback_url"
    assert _tasks(data_dir) == 0
    assert balance(account) == START


@pytest.mark.parametrize("url", BAD_SCHEMES + INTERNAL)
def test_upload_callback_urls_pass_the_same_policy(account: NewKey, url: str) -> None:
    body = {"filename": "a.wav", "bytes": 1000, "process": {"kind": "transcription", "callback_url": url}}
    response = call("POST", "/v1/uploads", account.secret, json.dumps(body).encode(), "application/json")
    assert response.status == 400, response.body
    error = json.loads(response.body)["error"]
    assert error["param"] == "process.callback_url"


def test_upload_callback_is_checked_again_when_used(
    account: NewKey, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Allowed when the upload was made (loopback allowed then), refused at delivery once the policy says no."""
    from audio_fixtures import audio_bytes

    from earshot.jobs.ingest import ingest_object
    from earshot.services.uploads import load_upload

    listener = Listener()
    try:
        monkeypatch.setenv("EARSHOT_ALLOW_LOOPBACK_URLS", "true")
        reset_runtime()
        callback = f"http://127.0.0.1:{listener.port}/hook"
        body = {"filename": "a.wav", "bytes": 100_000, "process": {"kind": "transcription", "callback_url": callback}}
        response = call("POST", "/v1/uploads", account.secret, json.dumps(body).encode(), "application/json")
        assert response.status == 201, response.body
        file_id = json.loads(response.body)["id"]
        monkeypatch.setenv("EARSHOT_ALLOW_LOOPBACK_URLS", "false")
        reset_runtime()
        runtime = get_runtime()
        record = load_upload(runtime, file_id)
        assert record is not None
        runtime.blobs.put(record.key, audio_bytes("wav", 1.0, sample_rate=16000))
        task = ingest_object(runtime, bucket="local", key=record.key, version="1")
        assert task is not None
        runtime._extras["jobs"].wait_idle()
        events = [event.data for event in runtime.tasks.list_events(task.id) if event.type == "webhook"]
        assert events == [{"delivered": False, "attempts": events[0]["attempts"]}]
    finally:
        listener.close()
    assert listener.connections == 0
