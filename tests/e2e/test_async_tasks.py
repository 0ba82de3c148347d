"""Async tasks end to end against `earshot serve`: submit, poll, events, webhooks, uploads, refunds."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from audio_fixtures import audio_bytes
from fakes.upstreams import FakeGemini, error
from local_server import LocalServer, start_server

from earshot.webhooks import verify

WAV = audio_bytes("wav", 1.5, sample_rate=16000)


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


@pytest.fixture(scope="module")
def async_server(tmp_path_factory: pytest.TempPathFactory, gemini: FakeGemini) -> Iterator[LocalServer]:
    """A server whose callback and audio URLs may reach loopback, with one upstream model on the fake Gemini."""
    data = tmp_path_factory.mktemp("async-data")
    catalog = data.parent / "async-catalog.toml"
    default = (Path(__file__).parents[2] / "layers/core/python/earshot/catalogs/default.toml").read_text()
    catalog.write_text(
        default
        + f"""
[[models]]
sku = "gemini-fake"
kind = "understanding"
provider = "gemini"
upstream_model = "gemini-2.5-flash"
base_url = "{gemini.url}"
credential = "env:FAKE_GEMINI_KEY"
price_micro_usd_per_minute = 648
"""
    )
    server = start_server(
        data,
        {
            "EARSHOT_ALLOW_LOOPBACK_URLS": "true",
            "EARSHOT_CATALOG": str(catalog),
            "FAKE_GEMINI_KEY": gemini.api_key,
        },
    )
    yield server
    server.process.terminate()
    server.process.wait(timeout=10)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _balance(server: LocalServer, key: str) -> int:
    return int(httpx.get(f"{server.url}/v1/credits/balance", headers=_auth(key)).json()["balance_micro_usd"])


def _wait(server: LocalServer, key: str, task_id: str) -> dict[str, Any]:
    # Long-polls of 20 s, for up to 2 minutes: the engine's speed is measured in bench/, and this machine is shared.
    for _ in range(6):
        response = httpx.get(f"{server.url}/v1/tasks/{task_id}", params={"wait": 20}, headers=_auth(key), timeout=30)
        assert response.status_code == 200
        if response.json()["status"] in ("completed", "failed"):
            break
    return response.json()  # type: ignore[no-any-return]


def test_seed_002_understanding_flow(async_server: LocalServer) -> None:
    key = async_server.create_key()
    data_url = "data:audio/wav;base64," + base64.b64encode(WAV).decode()
    submitted = httpx.post(
        f"{async_server.url}/v1/audio/understanding",
        headers=_auth(key),
        json={"model": "audio-understand", "audio": data_url, "prompt": "Describe the loudness."},
    )
    assert submitted.status_code == 200, submitted.text
    task = submitted.json()
    assert task["object"] == "llm.generation.task" and task["kind"] == "llm" and task["status"] == "pending"
    assert task["id"].startswith("task-llm-") and task["results"] is None and task["stream"] is None
    assert task["model"] == "audio-understand"  # echoed verbatim

    done = _wait(async_server, key, task["id"])
    assert done["status"] == "completed" and done["progress"] == 100
    completion = done["results"][0]
    assert completion["object"] == "chat.completion"
    assert "LUFS" in completion["choices"][0]["message"]["content"]
    assert _balance(async_server, key) == 1_000_000 - 300

    other = async_server.create_key(name="other")
    assert httpx.get(f"{async_server.url}/v1/tasks/{task['id']}", headers=_auth(other)).status_code == 404


def test_sync_understanding_blocks_and_stream_gives_a_url(async_server: LocalServer) -> None:
    key = async_server.create_key()
    data_url = "data:audio/wav;base64," + base64.b64encode(WAV).decode()
    done = httpx.post(
        f"{async_server.url}/v1/audio/understanding",
        headers=_auth(key),
        json={"audio": data_url, "sync": True},
        timeout=30,
    ).json()
    assert done["status"] == "completed" and done["results"][0]["choices"][0]["message"]["content"]
    streamed = httpx.post(
        f"{async_server.url}/v1/audio/understanding", headers=_auth(key), json={"audio": data_url, "stream": True}
    ).json()
    assert streamed["stream"] == {"url": f"/v1/tasks/{streamed['id']}/events"}


def test_async_transcription_result_is_the_sync_response(async_server: LocalServer) -> None:
    key = async_server.create_key()
    response = httpx.post(
        f"{async_server.url}/v1/audio/transcriptions",
        headers=_auth(key),
        files={"file": ("a.wav", WAV, "audio/wav")},
        data={"async": "true", "response_format": "verbose_json"},
    )
    assert response.status_code == 202, response.text
    task = response.json()
    assert task["object"] == "transcription.task" and response.headers["location"] == f"/v1/tasks/{task['id']}"
    result = _wait(async_server, key, task["id"])["results"][0]
    assert result["task"] == "transcribe" and result["duration"] == pytest.approx(1.5, abs=0.01)
    assert result["billing"]["cost_micro_usd"] == 900
    assert _balance(async_server, key) == 1_000_000 - 900


def test_events_stream_and_resume(async_server: LocalServer) -> None:
    key = async_server.create_key()
    task = httpx.post(
        f"{async_server.url}/v1/audio/understand",
        headers={**_auth(key), "Prefer": "respond-async"},
        files={"file": ("a.wav", WAV, "audio/wav")},
        data={"question": "Is it loud?"},
    ).json()
    _wait(async_server, key, task["id"])
    stream = httpx.get(f"{async_server.url}/v1/tasks/{task['id']}/events", headers=_auth(key), timeout=30)
    assert stream.headers["content-type"].startswith("text/event-stream")
    ids = [int(line[4:]) for line in stream.text.splitlines() if line.startswith("id: ")]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) >= 5
    assert "event: done" in stream.text
    resumed = httpx.get(
        f"{async_server.url}/v1/tasks/{task['id']}/events",
        headers={**_auth(key), "Last-Event-ID": str(ids[-3])},
        timeout=30,
    )
    assert [int(line[4:]) for line in resumed.text.splitlines() if line.startswith("id: ")] == ids[-2:]


def test_an_upstream_failure_fails_the_task_and_refunds(async_server: LocalServer, gemini: FakeGemini) -> None:
    key = async_server.create_key()
    gemini.fail_next(error(500), error(500), error(500))
    task = httpx.post(
        f"{async_server.url}/v1/audio/understand",
        headers=_auth(key),
        files={"file": ("a.wav", WAV, "audio/wav")},
        data={"question": "Mood?", "model": "gemini-fake", "async": "true"},
    ).json()
    done = _wait(async_server, key, task["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "provider_error"
    assert _balance(async_server, key) == 1_000_000
    kinds = [e["kind"] for e in httpx.get(f"{async_server.url}/v1/usage", headers=_auth(key)).json()["data"]]
    assert kinds == ["refund", "debit", "topup"]


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    failures_left = 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Receiver.failures_left > 0:
            _Receiver.failures_left -= 1
            self.send_response(503)
        else:
            _Receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_webhooks_are_signed_and_retried(async_server: LocalServer) -> None:
    record = async_server.create_key_record()
    key, key_id = str(record["key"]), str(record["id"])
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        callback = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        task = httpx.post(
            f"{async_server.url}/v1/audio/transcriptions",
            headers=_auth(key),
            files={"file": ("a.wav", WAV, "audio/wav")},
            data={"async": "true", "callback_url": callback},
        ).json()
        _wait(async_server, key, task["id"])
        deadline = time.monotonic() + 20
        while not _Receiver.received and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        receiver.shutdown()
    assert _Receiver.failures_left == 0  # the first delivery failed and was retried
    headers, body = _Receiver.received[-1]
    secret = async_server.cli("keys", "webhook-secret", key_id).strip().splitlines()[-1]
    verify(secret, headers, body)
    assert json.loads(body)["id"] == task["id"] and json.loads(body)["status"] == "completed"


def test_an_upload_processes_itself_and_is_deleted(async_server: LocalServer) -> None:
    key = async_server.create_key()
    upload = httpx.post(
        f"{async_server.url}/v1/uploads",
        headers=_auth(key),
        json={"filename": "talk.wav", "bytes": len(WAV), "process": {"kind": "transcription"}},
    ).json()
    assert upload["id"].startswith("file-") and upload["upload"]["method"] == "POST"
    assert upload["task_id"].startswith("task-transcription-")  # the task the upload will start, known now
    posted = httpx.post(upload["upload"]["url"], data=upload["upload"]["fields"], files={"file": ("talk.wav", WAV)})
    assert posted.status_code == 204
    assert _wait(async_server, key, upload["task_id"])["status"] == "completed"
    debits = [
        e for e in httpx.get(f"{async_server.url}/v1/usage", headers=_auth(key)).json()["data"] if e["kind"] == "debit"
    ]
    assert [e["request_id"] for e in debits] == [upload["task_id"]]
    # the same object arriving again (a duplicated S3 event) starts nothing
    again = httpx.post(upload["upload"]["url"], data=upload["upload"]["fields"], files={"file": ("talk.wav", WAV)})
    assert again.status_code == 204
    time.sleep(1)
    ledger = httpx.get(f"{async_server.url}/v1/usage", headers=_auth(key)).json()["data"]
    assert [e["kind"] for e in ledger].count("debit") == 1


def test_uploads_refuse_bad_process_specs_and_oversize_files(async_server: LocalServer) -> None:
    key = async_server.create_key()
    bad = httpx.post(
        f"{async_server.url}/v1/uploads",
        headers=_auth(key),
        json={"filename": "a.wav", "bytes": 10, "process": {"kind": "transcription", "model": "nope"}},
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "not_a_transcription_model"
    upload = httpx.post(
        f"{async_server.url}/v1/uploads", headers=_auth(key), json={"filename": "a.wav", "bytes": 100}
    ).json()
    assert upload["task_id"] is None  # no process, no task
    too_big = httpx.post(upload["upload"]["url"], files={"file": ("a.wav", WAV)})
    assert too_big.status_code == 413
    # refused while streaming to disk: nothing half-written is left beside the blobs, and no blob appears
    blobs = async_server.data_dir / "blobs"
    assert not [p for p in blobs.rglob("*") if p.is_file() and p.name.startswith(".put-")]
    empty = httpx.post(upload["upload"]["url"], files={"file": ("a.wav", b"")})
    assert empty.status_code == 413
    not_a_form = httpx.post(upload["upload"]["url"], content=WAV[:100], headers={"content-type": "audio/wav"})
    assert not_a_form.status_code == 400
    exact = httpx.post(upload["upload"]["url"], files={"file": ("a.wav", WAV[:100])})
    assert exact.status_code == 204
    stored = [p for p in blobs.rglob("a.wav") if p.is_file()]
    assert [p.read_bytes() for p in stored] == [WAV[:100]]


def test_file_ids_work_on_processing_routes(async_server: LocalServer) -> None:
    key = async_server.create_key()
    upload = httpx.post(
        f"{async_server.url}/v1/uploads",
        headers=_auth(key),
        json={"filename": "a.wav", "bytes": len(WAV), "retain": True},
    ).json()
    httpx.post(upload["upload"]["url"], files={"file": ("a.wav", WAV)})
    response = httpx.post(
        f"{async_server.url}/v1/audio/transcriptions", headers=_auth(key), data={"file_id": upload["id"]}
    )
    assert response.status_code == 200, response.text
    other = async_server.create_key(name="other")
    stolen = httpx.post(
        f"{async_server.url}/v1/audio/transcriptions", headers=_auth(other), data={"file_id": upload["id"]}
    )
    assert stolen.status_code == 404
