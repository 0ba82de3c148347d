"""/openapi.json tells the truth: schemathesis, with all its default checks, against a real `earshot serve`.

Every phase runs (the document's examples, the coverage of each schema's edges, random fuzzing, and stateful
sequences such as create-then-delete), positive and negative: no 5xx, every status, content type, header
and body as documented, schema-valid requests accepted and schema-violating ones refused. The run is
seeded and bounded (``-n 10``; 1-1.5 minutes here). ``openapi_fuzz_hooks`` gives positive cases real
audio where the schema says "audio" (see its docstring); everything else is as schemathesis generates it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from fakes.upstreams import FakeOpenAI
from local_server import LocalServer, start_server
from speech_fixtures import requires_espeak, speak

HERE = Path(__file__).resolve().parent
SEED = 20261202
MAX_EXAMPLES = 10


class _AudioHost(BaseHTTPRequestHandler):
    """GET: the clip (an audio URL the fuzzed server fetches); POST: 200 (a webhook receiver)."""

    clip = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(self.clip)))
        self.end_headers()
        self.wfile.write(self.clip)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def clips(tmp_path: Path) -> tuple[Path, Path]:
    """English speech (the English-only SKU refuses audio it hears as another language): ~1 s, and a 2-10 s voice."""
    return (
        speak(tmp_path / "clip.wav", "Hello there."),
        speak(tmp_path / "voice.wav", "This is my voice, for the reference clip of a known speaker."),
    )


@pytest.fixture
def audio_host(clips: tuple[Path, Path]) -> Iterator[str]:
    _AudioHost.clip = clips[0].read_bytes()
    host = ThreadingHTTPServer(("127.0.0.1", 0), _AudioHost)
    threading.Thread(target=host.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{host.server_address[1]}"
    host.shutdown()
    host.server_close()


# The fuzzed server's catalog: transcription on a fake OpenAI upstream (its wire format on loopback), the embedded
# analyzer for understanding and extraction. The fuzzer checks the HTTP contract, and makes about a thousand
# requests: the embedded Whisper on each would take many minutes here (its own suites test it).
_CATALOG = """
[[models]]
sku = "whisper-fake"
kind = "transcription"
provider = "openai-transcription"
upstream_model = "whisper-1"
base_url = "{url}"
credential = "env:FUZZ_OPENAI_KEY"
price_micro_usd_per_minute = 900
aliases = ["transcribe"]
languages = ["en", "fr"]
translates = true

[[models]]
sku = "whisper-fake-en"
kind = "transcription"
provider = "openai-transcription"
upstream_model = "whisper-1"
base_url = "{url}"
credential = "env:FUZZ_OPENAI_KEY"
price_micro_usd_per_minute = 600
languages = ["en"]

[[models]]
sku = "acoustic-understand"
kind = "understanding"
provider = "embedded:analyzer"
price_micro_usd_per_minute = 300
aliases = ["audio-understand"]

[[models]]
sku = "acoustic-extract"
kind = "extraction"
provider = "embedded:analyzer"
base_price_micro_usd = 1000
price_micro_usd_per_minute = 200
aliases = ["extract"]
"""


@pytest.fixture
def fuzzed_server(tmp_path: Path) -> Iterator[LocalServer]:
    with FakeOpenAI() as upstream:
        upstream.reply_text = "Hello there."
        catalog = tmp_path / "catalog.toml"
        catalog.write_text(_CATALOG.format(url=upstream.url))
        # Loopback audio URLs and callbacks allowed (local development); a rate limit the fuzzer does not reach.
        env = {
            "EARSHOT_CATALOG": str(catalog),
            "FUZZ_OPENAI_KEY": upstream.api_key,
            "EARSHOT_ALLOW_LOOPBACK_URLS": "1",
            "EARSHOT_RATE_LIMIT_PER_MINUTE": "100000",
        }
        running = start_server(tmp_path / "data", env)
        try:
            yield running
        finally:
            running.process.terminate()
            try:
                running.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                running.process.kill()


def _uploaded_file(server: LocalServer, key: str, clip: bytes) -> str:
    """A finished, retained /v1/uploads file of ``clip``: the file_id positive cases use."""
    headers = {"Authorization": f"Bearer {key}"}
    created = httpx.post(
        f"{server.url}/v1/uploads", headers=headers, json={"filename": "clip.wav", "bytes": len(clip), "retain": True}
    )
    assert created.status_code == 201, created.text
    upload = created.json()["upload"]
    posted = httpx.post(upload["url"], data=upload["fields"], files={"file": ("clip.wav", clip, "audio/wav")})
    assert posted.status_code == 204, posted.text
    return str(created.json()["id"])


@requires_espeak
@pytest.mark.timeout(600)
def test_schemathesis_finds_nothing(
    fuzzed_server: LocalServer, audio_host: str, clips: tuple[Path, Path], tmp_path: Path
) -> None:
    key = fuzzed_server.create_key(balance_usd="100", name="fuzz")
    clip, voice = clips
    env = {
        **os.environ,
        "PYTHONPATH": str(HERE),
        "SCHEMATHESIS_HOOKS": "openapi_fuzz_hooks",
        "EARSHOT_FUZZ_CLIP_PATH": str(clip),
        "EARSHOT_FUZZ_VOICE_PATH": str(voice),
        "EARSHOT_FUZZ_HOST": audio_host,
        "EARSHOT_FUZZ_FILE_ID": _uploaded_file(fuzzed_server, key, clip.read_bytes()),
    }
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("st")),
            "run",
            f"{fuzzed_server.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--generation-database",
            "none",
            "--workers",
            "1",  # Python 3.11's ast.parse is not thread-safe, and Hypothesis calls it while drawing
            "--request-timeout",
            "60",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=540,
    )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert "No issues found" in run.stdout, run.stdout[-5000:]
    balance = httpx.get(f"{fuzzed_server.url}/v1/credits/balance", headers={"Authorization": f"Bearer {key}"})
    assert 0 <= balance.json()["balance_micro_usd"] < 100_000_000  # positive cases ran, and were billed
