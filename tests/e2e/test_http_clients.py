"""httpx and curl against `earshot serve`, the dev key, and concurrent billing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from audio_fixtures import decoded_duration, write_audio
from local_server import LocalServer, start_server
from speech_fixtures import requires_espeak, speak


def test_first_start_prints_a_working_dev_key(server) -> None:  # type: ignore[no-untyped-def]
    assert server.dev_key.startswith("sk-es-")
    response = httpx.get(f"{server.url}/v1/credits/balance", headers={"Authorization": f"Bearer {server.dev_key}"})
    assert response.status_code == 200
    assert response.json()["balance_micro_usd"] == 10_000_000


@requires_espeak
def test_curl_multipart_upload(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = server.create_key()
    audio = speak(tmp_path / "clip.wav", "testing one two three")
    done = subprocess.run(
        ["curl", "-sS", "-i", "-X", "POST", f"{server.url}/v1/audio/transcriptions",
         "-H", f"Authorization: Bearer {key}", "-F", f"file=@{audio}", "-F", "model=transcribe",
         "-F", "response_format=text"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    head, _, body = done.stdout.partition("\n\n")  # text mode turned CRLF into LF
    assert head.startswith("HTTP/1.1 200")
    assert "X-Earshot-Cost-USD: 0.000900" in head
    assert body.strip()


def test_curl_without_a_key_gets_the_envelope(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    audio = write_audio(tmp_path / "a.wav", fmt="wav", seconds=1.0)
    done = subprocess.run(
        ["curl", "-sS", "-X", "POST", f"{server.url}/v1/audio/transcriptions", "-F", f"file=@{audio}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(done.stdout)["error"]["code"] == "auth_error"


@pytest.fixture(scope="module")
def patient_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server whose synchronous requests may take 150 s (EARSHOT_REQUEST_TIMEOUT_SEC): the embedded recogniser
    needs ~0.4 s per second of speech, so the default 29 s refuses a 125-s recording before charging it."""
    running = start_server(tmp_path_factory.mktemp("patient"), extra_env={"EARSHOT_REQUEST_TIMEOUT_SEC": "150"})
    yield running
    running.process.terminate()
    running.process.wait(timeout=10)


def test_httpx_long_audio_bills_per_started_minute(patient_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = patient_server
    key = server.create_key()
    audio = write_audio(tmp_path / "long.mp3", fmt="mp3", seconds=125.0, kind="silence", sample_rate=16000)
    with audio.open("rb") as handle:
        response = httpx.post(
            f"{server.url}/v1/audio/transcriptions",
            headers={"Authorization": f"Bearer {key}"},
            files={"file": ("long.mp3", handle, "audio/mpeg")},
            data={"response_format": "verbose_json"},
            timeout=120,
        )
    assert response.status_code == 200, response.text
    billing = response.json()["billing"]
    assert billing["billable_minutes"] == 3
    assert billing["cost_micro_usd"] == 2700
    # exact to one mp3 frame (576 samples at 16 kHz) of what a decoder actually produces
    assert billing["duration_sec"] == pytest.approx(decoded_duration(audio), abs=576 / 16000)
    assert response.json()["text"] == ""


def test_concurrent_requests_never_overdraw(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Balance for K=3 requests, N=8 in parallel: exactly 3 succeed, 5 get 402, ledger sums match."""
    key = server.create_key(balance_usd="0.0027")
    audio = write_audio(tmp_path / "tone.wav", fmt="wav", seconds=1.0, sample_rate=16000).read_bytes()

    def post(_: int) -> int:
        return httpx.post(
            f"{server.url}/v1/audio/transcriptions",
            headers={"Authorization": f"Bearer {key}"},
            files={"file": ("tone.wav", audio, "audio/wav")},
            timeout=120,
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(post, range(8)))
    assert sorted(statuses) == [200, 200, 200, 402, 402, 402, 402, 402]
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{server.url}/v1/credits/balance", headers=headers).json()["balance_micro_usd"] == 0
    ledger = httpx.get(f"{server.url}/v1/usage", headers=headers).json()["data"]
    assert sum(e["amount_micro_usd"] for e in ledger) == 0  # opening 2700 minus 3 x 900
    assert [e["kind"] for e in ledger].count("debit") == 3
