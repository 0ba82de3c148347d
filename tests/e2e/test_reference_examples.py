"""Every example request of the five reference documents, run unchanged against `earshot serve`.

The server runs the SHIPPED catalog. Its upstream SKUs are configured the way an operator would (``GROQ_API_KEY``,
``OPENAI_API_KEY``, ``GEMINI_API_KEY``) and pointed, through the documented local base-URL overrides, at fake
upstreams on 127.0.0.1 that speak Groq's/OpenAI's and Gemini's wire formats (``tests/fakes/upstreams.py``). The
curl examples run through the real ``curl`` binary exactly as the documents print them; the only substitutions are
the vendor's host (``https://kymaapi.com`` ...) for the server's address, and, for audio URLs on public hosts this
machine cannot reach, a loopback host serving a file of the same name. Each answer is checked for status, shape
and fields as the document describes them, and each bill for the SKU's price.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import openai
import pytest
from fakes.upstreams import FakeGemini, FakeOpenAI
from local_server import LocalServer, start_server
from speech_fixtures import requires_espeak, speak

pytestmark = [
    requires_espeak,
    pytest.mark.skipif(shutil.which("curl") is None, reason="the documents' examples are curl commands"),
]

SENTENCE = "for too long I have watched mortals suffer"


@dataclass
class Upstreams:
    groq: FakeOpenAI
    openai: FakeOpenAI
    gemini: FakeGemini


class _AudioHost(BaseHTTPRequestHandler):
    """Serves the files the documents' audio URLs name, by the last component of the path."""

    files: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.files.get(self.path.rsplit("/", 1)[-1])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the documents' examples upload, as spoken English in the formats their names say."""
    directory = tmp_path_factory.mktemp("reference-audio")
    for name in ("meeting.mp3", "interview.mp3", "clip.mp3", "sample-audio.mp3"):
        speak(directory / name, SENTENCE, fmt="mp3")
    speak(directory / "brooklyn.flac", SENTENCE, fmt="flac")
    return directory


@pytest.fixture(scope="module")
def audio_host(audio_dir: Path) -> Iterator[str]:
    _AudioHost.files = {path.name: path.read_bytes() for path in audio_dir.iterdir()}
    host = ThreadingHTTPServer(("127.0.0.1", 0), _AudioHost)
    threading.Thread(target=host.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{host.server_address[1]}"
    host.shutdown()
    host.server_close()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with (
        FakeOpenAI(api_key="gsk_test_groq_0123456789") as groq,
        FakeOpenAI() as openai_fake,
        FakeGemini() as gemini,
    ):
        groq.segments = openai_fake.segments = [(0.0, 2.4, " For too long, I have watched mortals suffer.")]
        gemini.reply_text = "A calm male voice over no music; no sound effects. The speaker sounds weary."
        yield Upstreams(groq=groq, openai=openai_fake, gemini=gemini)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, upstreams: Upstreams) -> Iterator[LocalServer]:
    """`earshot serve` on the shipped catalog, every provider configured the documented way."""
    environment = {
        "GROQ_API_KEY": upstreams.groq.api_key,
        "OPENAI_API_KEY": upstreams.openai.api_key,
        "GEMINI_API_KEY": upstreams.gemini.api_key,
        "EARSHOT_GROQ_BASE_URL": upstreams.groq.url,
        "EARSHOT_OPENAI_BASE_URL": upstreams.openai.url,
        "EARSHOT_GEMINI_BASE_URL": upstreams.gemini.url,
        "EARSHOT_ALLOW_LOOPBACK_URLS": "1",
    }
    saved = os.environ.pop("EARSHOT_CATALOG", None)  # the shipped catalog, whatever the caller's shell says
    try:
        running = start_server(tmp_path_factory.mktemp("reference-server"), environment)
    finally:
        if saved is not None:
            os.environ["EARSHOT_CATALOG"] = saved
    yield running
    running.process.terminate()
    running.process.wait(timeout=10)


@pytest.fixture
def key(served: LocalServer) -> str:
    return served.create_key(balance_usd="10")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def run_curl(command: str, *, server: LocalServer, key: str, cwd: Path, host: str, audio_host: str = "") -> Answer:
    """Run a document's curl ``command`` verbatim, but against ``server`` (and audio URLs against ``audio_host``)."""
    command = textwrap.dedent(command).strip().replace(host, server.url)
    if audio_host:
        command = re.sub(
            r"https://[a-z.]+\.(?:com)/(?:[\w./-]+/)?([\w.-]+\.(?:mp3|flac))", rf"{audio_host}/\1", command
        )
    headers_file, body_file = cwd / "headers.txt", cwd / "body.bin"
    done = subprocess.run(
        ["bash", "-c", f"{command} -sS -D {headers_file} -o {body_file}"],
        cwd=cwd,
        env={**os.environ, "KYMA_API_KEY": key, "YOUR_API_KEY": key},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    blocks = headers_file.read_bytes().decode("latin-1").strip().split("\r\n\r\n")
    lines = blocks[-1].split("\r\n")  # after any 100 Continue
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(status=status, headers=headers, body=body_file.read_bytes())


def _balance_micro_usd(server: LocalServer, key: str) -> int:
    response = httpx.get(f"{server.url}/v1/credits/balance", headers={"Authorization": f"Bearer {key}"})
    return int(response.json()["balance_micro_usd"])


def _check_billing(billing: dict[str, Any], *, cost_usd: float, balance_micro_usd: int) -> None:
    assert billing["billable_minutes"] == 1  # a few seconds bill one minute
    assert billing["cost_usd"] == pytest.approx(cost_usd)
    assert billing["balance_usd"] == pytest.approx(balance_micro_usd / 1e6)
    assert 1.0 < billing["duration_sec"] < 10.0


# -- audio-transcriptions.txt ----------------------------------------------------------------------------------
KYMA = "https://kymaapi.com"


def test_transcriptions_first_example_uses_the_transcribe_alias_and_verbose_json(
    served: LocalServer, key: str, audio_dir: Path
) -> None:
    answer = run_curl(
        """
        curl -X POST https://kymaapi.com/v1/audio/transcriptions \\
          -H "Authorization: Bearer $KYMA_API_KEY" \\
          -F "file=@meeting.mp3" \\
          -F "model=transcribe"
        """,
        server=served,
        key=key,
        cwd=audio_dir,
        host=KYMA,
    )
    assert answer.status == 200, answer.body
    body = answer.json()
    # verbose_json by default: the document's response fields, the embedded SKU behind the alias named.
    assert {"task", "language", "duration", "text", "segments", "model", "billing"} <= set(body)
    assert body["task"] == "transcribe" and body["language"] == "English" and body["model"] == "whisper-base"
    assert len(set(body["text"].lower().replace(",", "").split()) & set(SENTENCE.split())) >= 4, body["text"]
    assert body["segments"] and {"id", "start", "end", "text", "tokens", "temperature", "avg_logprob"} <= set(
        body["segments"][0]
    )
    _check_billing(body["billing"], cost_usd=0.0009, balance_micro_usd=_balance_micro_usd(served, key))


def test_transcriptions_pin_a_specific_model(
    served: LocalServer, key: str, audio_dir: Path, upstreams: Upstreams
) -> None:
    before = len(upstreams.groq.requests)
    answer = run_curl(
        """
        curl -X POST https://kymaapi.com/v1/audio/transcriptions \\
          -H "Authorization: Bearer $KYMA_API_KEY" \\
          -F "file=@interview.mp3" \\
          -F "model=whisper-v3-turbo" \\
          -F "response_format=verbose_json" \\
          -F "language=en"
        """,
        server=served,
        key=key,
        cwd=audio_dir,
        host=KYMA,
    )
    assert answer.status == 200, answer.body
    body = answer.json()
    # The document's response example, field by field.
    assert body["task"] == "transcribe" and body["language"] == "English"
    assert body["text"] == "For too long, I have watched mortals suffer."
    assert body["model"] == "whisper-v3-turbo"
    (segment,) = body["segments"]
    assert segment["id"] == 0 and segment["start"] == 0 and segment["end"] == 2.4
    assert segment["text"].strip() == body["text"]
    # Whisper's decoding statistics, as the upstream reported them.
    assert (segment["tokens"], segment["temperature"], segment["avg_logprob"]) == ([50364], 0.0, -0.25)
    assert (segment["compression_ratio"], segment["no_speech_prob"]) == (1.1, 0.01)
    _check_billing(body["billing"], cost_usd=0.0009, balance_micro_usd=10_000_000 - 900)
    # Served by Groq's wire format with Groq's key, the upstream model named as Groq names it.
    (seen,) = upstreams.groq.requests[before:]
    assert seen.path == "/v1/audio/transcriptions" and seen.model == "whisper-large-v3-turbo"
    assert seen.field("language") == "en" and seen.headers["authorization"] == f"Bearer {upstreams.groq.api_key}"


def test_transcriptions_just_the_transcript_text(served: LocalServer, key: str, audio_dir: Path) -> None:
    answer = run_curl(
        """
        curl -X POST https://kymaapi.com/v1/audio/transcriptions \\
          -H "Authorization: Bearer $KYMA_API_KEY" \\
          -F "file=@clip.mp3" \\
          -F "model=transcribe" \\
          -F "response_format=text"
        """,
        server=served,
        key=key,
        cwd=audio_dir,
        host=KYMA,
    )
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.body.decode()
    assert not text.lstrip().startswith("{") and "segments" not in text  # the bare transcript
    assert len(set(text.lower().replace(",", "").split()) & set(SENTENCE.split())) >= 4, text
    # Billing on the headers (X-Earshot-* for the document's X-Kyma-*).
    assert answer.headers["x-earshot-model"] == "whisper-base"
    assert answer.headers["x-earshot-billable-minutes"] == "1"
    assert float(answer.headers["x-earshot-cost-usd"]) == pytest.approx(0.0009)
    assert 1.0 < float(answer.headers["x-earshot-duration-sec"]) < 10.0
    assert float(answer.headers["x-earshot-balance-usd"]) == pytest.approx(_balance_micro_usd(served, key) / 1e6)


def test_transcriptions_python_openai_sdk_example(served: LocalServer, key: str, audio_dir: Path) -> None:
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=key)  # the document's two arguments only
    with (audio_dir / "meeting.mp3").open("rb") as f:
        result = client.audio.transcriptions.create(
            model="transcribe",
            file=f,
        )
    assert len(set(result.text.lower().replace(",", "").split()) & set(SENTENCE.split())) >= 4, result.text
    assert (result.model_extra or {})["model"] == "whisper-base"


def test_transcriptions_playground_json_body_gets_the_documented_400(
    served: LocalServer, key: str, audio_dir: Path
) -> None:
    """The document's interactive snippet sends JSON; its own error table answers that: 400 ``invalid_request``."""
    answer = run_curl(
        """
        curl --request POST \\
          --url https://kymaapi.com/v1/audio/transcriptions \\
          --header "Authorization: Bearer $KYMA_API_KEY" \\
          --header 'Content-Type: application/json' \\
          --data '
        {
          "model": "<string>",
          "language": "<string>",
          "response_format": "<string>",
          "temperature": 123,
          "prompt": "<string>"
        }
        '
        """,
        server=served,
        key=key,
        cwd=audio_dir,
        host=KYMA,
    )
    assert answer.status == 400 and answer.json()["error"]["code"] == "invalid_request"
    assert _balance_micro_usd(served, key) == 10_000_000


@pytest.mark.parametrize("response_format", ["json", "text", "srt", "vtt", "verbose_json"])
def test_the_openai_sdk_works_unchanged_on_every_format_of_an_upstream_sku(
    served: LocalServer, key: str, audio_dir: Path, response_format: str
) -> None:
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=key, max_retries=0)
    with (audio_dir / "clip.mp3").open("rb") as f:
        raw = client.audio.transcriptions.with_raw_response.create(  # type: ignore[call-overload]
            model="whisper-v3-turbo", file=f, response_format=response_format
        )
    result = raw.parse()
    assert raw.headers["x-earshot-model"] == "whisper-v3-turbo"
    assert raw.headers["x-earshot-billable-minutes"] == "1"
    text = "For too long, I have watched mortals suffer."
    if response_format == "json":
        assert result.text == text and (result.model_extra or {})["model"] == "whisper-v3-turbo"
    elif response_format == "verbose_json":
        assert result.text == text and result.language == "English" and result.segments
    elif response_format == "text":
        assert isinstance(result, str) and result.strip() == text
    elif response_format == "srt":
        assert isinstance(result, str) and result.startswith("1\n00:00:00,000 --> 00:00:02,400") and text in result
    else:
        assert isinstance(result, str) and result.startswith("WEBVTT") and "00:00:00.000 --> 00:00:02.400" in result
    assert _balance_micro_usd(served, key) == 10_000_000 - 900


def test_the_openai_sdk_translates_with_whisper_1(served: LocalServer, key: str, audio_dir: Path) -> None:
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=key, max_retries=0)
    with (audio_dir / "clip.mp3").open("rb") as f:
        result = client.audio.translations.create(model="whisper-1", file=f)
    assert result.text == "For too long, I have watched mortals suffer."
    assert _balance_micro_usd(served, key) == 10_000_000 - 6000


# -- audio-understand.txt --------------------------------------------------------------------------------------
# The document titles its examples without printing them; each is its fields, as curl would send them.


def _understand(answer: Answer) -> dict[str, Any]:
    assert answer.status == 200, answer.body
    body = answer.json()
    assert set(body) >= {"answer", "model", "billing"} and isinstance(body["answer"], str) and body["answer"]
    assert {"duration_sec", "duration_source", "billable_minutes", "cost_usd", "balance_usd"} <= set(body["billing"])
    return dict(body)


def test_understand_mood_and_music_brief_for_a_video_clip(
    served: LocalServer, key: str, audio_dir: Path, upstreams: Upstreams
) -> None:
    before = len(upstreams.gemini.requests)
    body = _understand(
        run_curl(
            """
            curl -X POST https://kymaapi.com/v1/audio/understand \\
              -H "Authorization: Bearer $KYMA_API_KEY" \\
              -F "file=@clip.mp3" \\
              -F "question=Describe the music style, BPM, and any background SFX" \\
              -F "model=gemini-3-flash-audio"
            """,
            server=served,
            key=key,
            cwd=audio_dir,
            host=KYMA,
        )
    )
    assert body["answer"] == upstreams.gemini.reply_text and body["model"] == "gemini-3-flash-audio"
    assert body["billing"]["duration_source"] == "measured"
    _check_billing(body["billing"], cost_usd=0.000648, balance_micro_usd=10_000_000 - 648)
    (seen,) = upstreams.gemini.requests[before:]
    assert seen.model == "gemini-3-flash-preview" and seen.headers["x-goog-api-key"] == upstreams.gemini.api_key
    assert seen.audio_format in ("audio/mp3", "audio/wav", "audio/flac")


def test_understand_speaker_emotion_check_on_the_alias(served: LocalServer, key: str, audio_dir: Path) -> None:
    body = _understand(
        run_curl(
            """
            curl -X POST https://kymaapi.com/v1/audio/understand \\
              -H "Authorization: Bearer $KYMA_API_KEY" \\
              -F "file=@clip.mp3" \\
              -F "question=Is the speaker angry, calm, or tired?" \\
              -F "model=audio-understand"
            """,
            server=served,
            key=key,
            cwd=audio_dir,
            host=KYMA,
        )
    )
    assert body["model"] == "acoustic-understand"  # the embedded SKU behind the alias, named
    assert "emotion" in body["answer"].lower()  # it says what it cannot determine
    _check_billing(body["billing"], cost_usd=0.0003, balance_micro_usd=10_000_000 - 300)


def test_understand_pass_exact_duration_for_accurate_billing(served: LocalServer, key: str, audio_dir: Path) -> None:
    body = _understand(
        run_curl(
            """
            curl -X POST https://kymaapi.com/v1/audio/understand \\
              -H "Authorization: Bearer $KYMA_API_KEY" \\
              -F "file=@clip.mp3" \\
              -F "question=What is the mood?" \\
              -F "model=gemini-3-flash-audio" \\
              -F "duration_sec=2.9"
            """,
            server=served,
            key=key,
            cwd=audio_dir,
            host=KYMA,
        )
    )
    assert body["model"] == "gemini-3-flash-audio"
    _check_billing(body["billing"], cost_usd=0.000648, balance_micro_usd=10_000_000 - 648)


# -- audio-understanding-tasks.txt -----------------------------------------------------------------------------
def _task_submitted(body: dict[str, Any], *, model: str, stream: bool) -> None:
    assert re.fullmatch(r"task-llm-\d{10}-[a-z0-9]{8}", body["id"]), body["id"]
    assert body["object"] == "llm.generation.task" and body["kind"] == "llm"
    assert body["model"] == model  # echoed verbatim
    assert body["status"] == "pending" and body["progress"] == 0
    assert isinstance(body["created_at"], int) and abs(body["created_at"] - time.time()) < 120
    assert body["results"] is None and body["error"] is None
    if stream:
        assert body["stream"]["url"].endswith(f"/v1/tasks/{body['id']}/events")
    else:
        assert body["stream"] is None


def _completion(completion: dict[str, Any], *, reply: str, model: str) -> None:
    assert completion["object"] == "chat.completion" and completion["model"] == model
    (choice,) = completion["choices"]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"] == reply
    assert choice["finish_reason"] == "stop"
    assert (
        completion["usage"]["total_tokens"]
        == completion["usage"]["prompt_tokens"] + completion["usage"]["completion_tokens"]
    )


def test_understanding_task_with_the_documents_body(
    served: LocalServer, key: str, audio_host: str, audio_dir: Path, upstreams: Upstreams
) -> None:
    body = {
        "model": "gemini-2.5-pro",
        "audio": "https://storage.googleapis.com/cloud-samples-tests/speech/brooklyn.flac",
        "prompt": "Identify the speakers and emotion in this audio.",
    }
    before = len(upstreams.gemini.requests)
    submitted = run_curl(
        f"""
        curl -X POST https://kymaapi.com/v1/audio/understanding \\
          -H "Authorization: Bearer $YOUR_API_KEY" \\
          -H "Content-Type: application/json" \\
          -d '{json.dumps(body)}'
        """,
        server=served,
        key=key,
        cwd=audio_dir,
        host=KYMA,
        audio_host=audio_host,
    )
    assert submitted.status in (200, 202), submitted.body
    task = submitted.json()
    _task_submitted(task, model="gemini-2.5-pro", stream=False)
    done = httpx.get(
        f"{served.url}/v1/tasks/{task['id']}", params={"wait": 20}, headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert done["status"] == "completed", done
    _completion(done["results"][0], reply=upstreams.gemini.reply_text, model="gemini-2.5-pro")
    assert _balance_micro_usd(served, key) == 10_000_000 - 12_000
    (seen,) = upstreams.gemini.requests[before:]
    assert seen.model == "gemini-2.5-pro" and seen.audio == (audio_dir / "brooklyn.flac").read_bytes()
    assert "Identify the speakers and emotion in this audio." in json.dumps(seen.json)


def test_understanding_sync_with_a_data_uri_and_the_default_prompt(
    served: LocalServer, key: str, audio_dir: Path, upstreams: Upstreams
) -> None:
    data = base64.b64encode((audio_dir / "brooklyn.flac").read_bytes()).decode()
    before = len(upstreams.gemini.requests)
    response = httpx.post(
        f"{served.url}/v1/audio/understanding",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gemini-2.5-pro", "audio": f"data:audio/flac;base64,{data}", "sync": True},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    task = response.json()
    assert task["status"] == "completed" and task["model"] == "gemini-2.5-pro"
    _completion(task["results"][0], reply=upstreams.gemini.reply_text, model="gemini-2.5-pro")
    (seen,) = upstreams.gemini.requests[before:]
    assert "Please transcribe this audio file" in json.dumps(seen.json)  # the documented default prompt


def test_understanding_stream_names_its_subscription(served: LocalServer, key: str, audio_dir: Path) -> None:
    data = base64.b64encode((audio_dir / "brooklyn.flac").read_bytes()).decode()
    response = httpx.post(
        f"{served.url}/v1/audio/understanding",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gemini-2.5-pro", "audio": f"data:audio/flac;base64,{data}", "stream": True},
    )
    assert response.status_code in (200, 202), response.text
    _task_submitted(response.json(), model="gemini-2.5-pro", stream=True)


# -- extract-audio.txt -----------------------------------------------------------------------------------------
DUMPLING = "https://app.dumplingai.com"


def test_extract_audio_example_request(served: LocalServer, key: str, audio_dir: Path, audio_host: str) -> None:
    answer = run_curl(
        """
        curl -X POST https://app.dumplingai.com/api/v1/extract-audio \\
        -H "Content-Type: application/json" \\
        -H "Authorization: Bearer YOUR_API_KEY" \\
        -H "Request-Source: API" \\
        -d '{
        "inputMethod": "url",
        "audio": "https://example.com/sample-audio.mp3",
        "prompt": "Summarize the main points discussed in this audio.",
        "jsonMode": false
        }'
        """.replace("Bearer YOUR_API_KEY", "Bearer $YOUR_API_KEY"),  # the document's placeholder for the key
        server=served,
        key=key,
        cwd=audio_dir,
        host=DUMPLING,
        audio_host=audio_host,
    )
    assert answer.status == 200, answer.body
    body = answer.json()
    assert set(body) >= {"results", "prompt", "audioDuration", "creditUsage"}
    assert isinstance(body["results"], str) and body["results"]
    assert body["prompt"] == "Summarize the main points discussed in this audio."
    assert 1.0 < body["audioDuration"] < 10.0
    assert body["creditUsage"] == 12  # 10 base + 2 for the one started minute
    assert answer.headers["content-type"].startswith("application/json")
    assert int(answer.headers["x-ratelimit-limit"]) >= int(answer.headers["x-ratelimit-remaining"]) >= 0
    assert _balance_micro_usd(served, key) == 10_000_000 - 1200  # 12 credits at $0.0001


def test_extract_audio_lists_its_formats(served: LocalServer, key: str, audio_dir: Path) -> None:
    answer = run_curl(
        """
        curl -X GET https://app.dumplingai.com/api/v1/extract-audio \\
        -H "Authorization: Bearer $YOUR_API_KEY"
        """,
        server=served,
        key=key,
        cwd=audio_dir,
        host=DUMPLING,
    )
    assert answer.status == 200, answer.body
    assert {"wav", "mp3", "aiff", "aac", "ogg", "flac"} <= set(json.dumps(answer.json()).replace('"', " ").split())


# -- v2-audio-transcribe.txt -----------------------------------------------------------------------------------
V2_HOST = "https://api.example.com"


def _v2(answer: Answer) -> dict[str, Any]:
    assert answer.status == 200, answer.body
    body = answer.json()
    assert set(body) == {"instanceId", "transcript", "metadata", "tokenUsage", "cost"}
    uuid.UUID(body["instanceId"])
    assert set(body["metadata"]) == {"language", "duration"} and isinstance(body["metadata"]["duration"], str)
    assert set(body["tokenUsage"]) == {"completionTokens", "promptTokens", "totalTokens"}
    assert set(body["cost"]) == {"completion", "prompt", "total", "currency"} and body["cost"]["currency"] == "USD"
    return dict(body)


def test_v2_transcribe_with_the_default_model(served: LocalServer, key: str, audio_dir: Path) -> None:
    body = _v2(
        run_curl(
            """
            curl -X POST "https://api.example.com/api/v2/Audio/transcribe?culture=en" \\
              -H "Authorization: Bearer $YOUR_API_KEY" \\
              -F "file=@meeting.mp3" \\
              -F "prompt=Mortals, suffering." \\
              -F "user=user-42" \\
              -F "channel=api"
            """,
            server=served,
            key=key,
            cwd=audio_dir,
            host=V2_HOST,
        )
    )
    assert len(set(body["transcript"].lower().replace(",", "").split()) & set(SENTENCE.split())) >= 4
    assert body["metadata"]["language"] == "English"
    assert body["cost"]["total"] == pytest.approx(0.0009)


def test_v2_transcribe_with_a_pinned_upstream_model_in_spanish_culture(
    served: LocalServer, key: str, audio_dir: Path, upstreams: Upstreams
) -> None:
    before = len(upstreams.groq.requests)
    body = _v2(
        run_curl(
            """
            curl -X POST "https://api.example.com/api/v2/Audio/transcribe?culture=es" \\
              -H "Authorization: Bearer $YOUR_API_KEY" \\
              -F "model=whisper-v3-turbo" \\
              -F "file=@interview.mp3" \\
              -F "prompt=Mortals, suffering."
            """,
            server=served,
            key=key,
            cwd=audio_dir,
            host=V2_HOST,
        )
    )
    assert body["transcript"] == "For too long, I have watched mortals suffer."
    assert body["cost"]["total"] == pytest.approx(0.0009) and _balance_micro_usd(served, key) == 10_000_000 - 900
    (seen,) = upstreams.groq.requests[before:]
    assert seen.model == "whisper-large-v3-turbo" and seen.field("prompt") == "Mortals, suffering."
