"""Live streaming against `earshot serve`: the openai SDK's stream=True, live task events, mid-stream refunds."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest
from fakes.upstreams import FakeOpenAI, error
from local_server import LocalServer, start_server
from speech_fixtures import requires_espeak, speak

SENTENCE = "hello world this is a test of the speech engine"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _balance(server: LocalServer, key: str) -> int:
    return int(httpx.get(f"{server.url}/v1/credits/balance", headers=_auth(key)).json()["balance_micro_usd"])


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speak(tmp_path_factory.mktemp("live-speech") / "hello.wav", SENTENCE, fmt="wav")


@requires_espeak
def test_openai_sdk_stream_yields_deltas_then_the_billed_text(server: LocalServer, speech: Path) -> None:
    key = server.create_key(balance_usd="0.01")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    with speech.open("rb") as audio:
        events = list(client.audio.transcriptions.create(model="transcribe", file=audio, stream=True))
    types = [event.type for event in events]
    assert types[-1] == "transcript.text.done" and set(types[:-1]) == {"transcript.text.delta"}, types
    done = events[-1]
    assert done.type == "transcript.text.done"
    assert "".join(event.delta for event in events[:-1]) == done.text  # type: ignore[union-attr]
    assert len(set(done.text.split()) & set(SENTENCE.split())) >= 3, done.text
    billing = (done.model_extra or {})["billing"]
    assert billing["cost_micro_usd"] == 900 and billing["balance_micro_usd"] == 10_000 - 900
    assert _balance(server, key) == 10_000 - 900


def test_a_stream_that_cannot_be_honoured_is_refused_before_any_charge(server: LocalServer) -> None:
    key = server.create_key(balance_usd="0.01")
    response = httpx.post(
        f"{server.url}/v1/audio/transcriptions",
        headers=_auth(key),
        files={"file": ("a.wav", b"RIFF....not audio", "audio/wav")},
        data={"stream": "true", "response_format": "srt"},
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "response_format"
    bad_audio = httpx.post(
        f"{server.url}/v1/audio/transcriptions",
        headers=_auth(key),
        files={"file": ("a.wav", b"RIFF....not audio", "audio/wav")},
        data={"stream": "true"},
    )
    assert bad_audio.status_code == 400 and bad_audio.headers["content-type"].startswith("application/json")
    assert _balance(server, key) == 10_000


class _HeldAudio(BaseHTTPRequestHandler):
    """Serves the test's audio only once the test has seen the task's first event (``release``)."""

    audio = b""
    release = threading.Event()

    def do_GET(self) -> None:
        _HeldAudio.release.wait(timeout=60)
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(self.audio)))
        self.end_headers()
        self.wfile.write(self.audio)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def loopback_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    running = start_server(tmp_path_factory.mktemp("live-loopback"), {"EARSHOT_ALLOW_LOOPBACK_URLS": "true"})
    yield running
    running.process.terminate()
    running.process.wait(timeout=10)


@requires_espeak
def test_task_events_arrive_while_the_task_runs(loopback_server: LocalServer, tmp_path: Path) -> None:
    server = loopback_server
    key = server.create_key()
    _HeldAudio.audio = speak(tmp_path / "long.wav", " ".join([SENTENCE] * 3), fmt="wav").read_bytes()
    _HeldAudio.release.clear()
    audio_host = ThreadingHTTPServer(("127.0.0.1", 0), _HeldAudio)
    threading.Thread(target=audio_host.serve_forever, daemon=True).start()
    try:
        task = httpx.post(
            f"{server.url}/v1/audio/transcriptions",
            headers=_auth(key),
            data={"url": f"http://127.0.0.1:{audio_host.server_port}/long.wav", "async": "true"},
        ).json()
        seen: list[tuple[str, str]] = []
        with httpx.stream(
            "GET", f"{server.url}/v1/tasks/{task['id']}/events", headers=_auth(key), timeout=120
        ) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            event = ""
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    seen.append((event, line[6:]))
                    # The task cannot get past fetching its audio until now: this event arrived while it ran.
                    _HeldAudio.release.set()
    finally:
        _HeldAudio.release.set()
        audio_host.shutdown()
    kinds = [name for name, _ in seen]
    assert kinds[0] == "status" and json.loads(seen[0][1])["status"] == "pending", kinds
    assert kinds[-1] == "done" and "partial" in kinds, kinds
    # Whisper's segment texts carry their leading space (as OpenAI's do); the words are what must match.
    partial_words = " ".join(json.loads(data)["segment"]["text"] for name, data in seen if name == "partial").split()
    final = json.loads(seen[-1][1])
    assert final["status"] == "completed" and final["results"][0]["text"].split() == partial_words


@pytest.fixture(scope="module")
def upstream_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalServer, FakeOpenAI]]:
    with FakeOpenAI() as fake:
        data = tmp_path_factory.mktemp("stream-upstream")
        catalog = data.parent / "stream-catalog.toml"
        catalog.write_text(fake.catalog_entry())
        running = start_server(data, {"EARSHOT_CATALOG": str(catalog), "FAKE_OPENAI_KEY": fake.api_key})
        yield running, fake
        running.process.terminate()
        running.process.wait(timeout=10)


def test_an_engine_failure_after_the_debit_ends_the_stream_with_an_error_and_a_refund(
    upstream_server: tuple[LocalServer, FakeOpenAI],
) -> None:
    from audio_fixtures import audio_bytes

    server, fake = upstream_server
    key = server.create_key(balance_usd="0.01")
    fake.fail_next(*[error(500)] * 5)
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    started = time.monotonic()
    with pytest.raises(openai.APIError) as raised:
        for _ in client.audio.transcriptions.create(
            model="transcribe", file=("a.wav", audio_bytes("wav", 1.5, sample_rate=16000)), stream=True
        ):
            pass
    assert time.monotonic() - started < 60
    assert "provider" in str(raised.value.message).lower() or raised.value.body, raised.value
    assert _balance(server, key) == 10_000
    kinds = [e["kind"] for e in httpx.get(f"{server.url}/v1/usage", headers=_auth(key)).json()["data"]]
    assert kinds == ["refund", "debit", "topup"]


def test_sync_understanding_streams_chunks_as_they_are_produced(server: LocalServer) -> None:
    import base64

    from audio_fixtures import audio_bytes

    key = server.create_key()
    data_url = "data:audio/wav;base64," + base64.b64encode(audio_bytes("wav", 1.5, sample_rate=16000)).decode()
    body = {"audio": data_url, "prompt": "Is it loud?", "sync": True, "stream": True}
    chunks: list[dict[str, object] | str] = []
    with httpx.stream(
        "POST", f"{server.url}/v1/audio/understanding", headers=_auth(key), json=body, timeout=60
    ) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                chunks.append(line[6:] if line == "data: [DONE]" else json.loads(line[6:]))
    assert chunks[-1] == "[DONE]"
    first, content, final = chunks[0], chunks[1], chunks[-2]
    assert isinstance(first, dict) and first["choices"][0]["delta"]["role"] == "assistant"  # type: ignore[index]
    assert isinstance(content, dict) and content["choices"][0]["delta"]["content"]  # type: ignore[index]
    assert isinstance(final, dict) and final["choices"][0]["finish_reason"]  # type: ignore[index]
    assert final["billing"]["cost_micro_usd"] > 0  # type: ignore[index]
