"""Hostile cases the first corpus did not carry, against a real ``earshot serve``.

- Heads waitress refuses before reading the request line (an invalid header line, a lower-case method, a target
  with a space) on extract-audio: answered in extract-audio's own ``{"error": "message"}``, not the envelope.
- A 2 KB ``schema`` whose references double 30 times: a 400 at once, nothing charged.
- Files whose headers lie, in the forms the first corpus did not build (mp4 with Opus/FLAC audio claiming ten
  hours, native FLAC frames renumbered to claim hours), through a multipart file, a data URL and a base64 body:
  each bills the seconds it holds, by the response headers, the ledger and the balance.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from audio_fixtures import encode_tone
from hostile_audio import claim_seconds, renumber_flac_frames
from hostile_http import send_raw
from local_server import LocalServer, start_server

EXTRACT = "/api/v1/extract-audio"
TEN_HOURS = 36_000.0


def _encode(path: Path, container: str, codec: str, seconds: float, rate: int) -> bytes:
    return encode_tone(path, container, codec, seconds, rate).read_bytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    running = start_server(tmp_path_factory.mktemp("redteam"), {"EARSHOT_RATE_LIMIT_PER_MINUTE": "100000"})
    yield running
    running.process.terminate()
    running.process.wait(timeout=10)


def _address(server: LocalServer) -> tuple[str, int]:
    parts = urlsplit(server.url)
    return parts.hostname or "127.0.0.1", parts.port or 80


@pytest.mark.parametrize(
    "head",
    [
        b"POST /api/v1/extract-audio HTTP/1.1\r\nHost: x\r\nBad header line\r\n\r\n",
        b"POST /api/v1/extract-audio HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer k\r\n\r\n",
        b"POST /api/v1/extract-audio HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
        b"post /api/v1/extract-audio HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/v1/extract-audio x HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/v1/extract-audio?a=b HTTP/1.1\r\nHost: x\r\nBad header line\r\n\r\n",
    ],
)
def test_heads_refused_before_the_request_line_answer_in_the_routes_contract(server: LocalServer, head: bytes) -> None:
    answer = send_raw(_address(server), head)
    assert answer.status == 400
    assert answer.headers["content-type"].startswith("application/json")
    payload = json.loads(answer.body)
    assert set(payload) == {"error"} and isinstance(payload["error"], str) and payload["error"], payload


def test_a_schema_that_expands_exponentially_is_refused_at_once(server: LocalServer) -> None:
    key = server.create_key(balance_usd="1")
    defs: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]} for i in range(30)
    }
    defs["d30"] = {"type": "object"}
    wav = _encode(server.data_dir / "s.wav", "wav", "pcm_s16le", 1.0, 16_000)
    payload = {
        "inputMethod": "base64",
        "audio": base64.b64encode(wav).decode(),
        "prompt": "p",
        "schema": {"$defs": defs, "$ref": "#/$defs/d0"},
    }
    started = time.monotonic()
    answer = httpx.post(f"{server.url}{EXTRACT}", json=payload, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert answer.status_code == 400 and "expands" in answer.json()["error"], answer.text
    assert time.monotonic() - started < 10
    balance = httpx.get(f"{server.url}/v1/credits/balance", headers={"Authorization": f"Bearer {key}"}).json()
    assert balance["balance_micro_usd"] == 1_000_000


@pytest.fixture(scope="module")
def lying_files(server: LocalServer) -> dict[str, tuple[bytes, str]]:
    """(bytes, media type) of 3-second files whose headers claim ten hours."""
    folder = server.data_dir / "lying"
    folder.mkdir(exist_ok=True)
    opus = _encode(folder / "a.mp4", "mp4", "libopus", 3.0, 48_000)
    flac_in_mp4 = _encode(folder / "b.mp4", "mp4", "flac", 3.0, 16_000)
    flac = _encode(folder / "c.flac", "flac", "flac", 3.0, 16_000)
    return {
        "mp4-opus": (claim_seconds(opus, "m4a", TEN_HOURS), "audio/mp4"),
        "mp4-flac": (claim_seconds(flac_in_mp4, "m4a", TEN_HOURS), "audio/mp4"),
        "flac-renumbered": (renumber_flac_frames(flac, {-2: 200_000, -1: 200_001}), "audio/flac"),
    }


@pytest.mark.parametrize("name", ["mp4-opus", "mp4-flac", "flac-renumbered"])
def test_lying_files_bill_what_they_hold_on_every_input_path(
    server: LocalServer, lying_files: dict[str, tuple[bytes, str]], name: str
) -> None:
    data, media_type = lying_files[name]
    key = server.create_key(balance_usd="1")
    auth = {"Authorization": f"Bearer {key}"}
    encoded = base64.b64encode(data).decode()
    sync = httpx.post(
        f"{server.url}/v1/audio/understand",
        headers=auth,
        files={"file": ("a.bin", data, media_type)},
        data={"question": "How long is it?"},
        timeout=240,
    )
    assert sync.status_code == 200, sync.text
    assert 2.9 <= float(sync.headers["X-Earshot-Duration-Sec"]) <= 3.1
    task = httpx.post(
        f"{server.url}/v1/audio/understanding",
        headers=auth,
        json={"audio": f"data:{media_type};base64,{encoded}", "prompt": "How long is it?", "sync": True},
        timeout=240,
    )
    assert task.status_code == 200 and task.json()["status"] == "completed", task.text
    extract = httpx.post(
        f"{server.url}{EXTRACT}",
        headers=auth,
        json={"inputMethod": "base64", "audio": encoded, "prompt": "duration"},
        timeout=240,
    )
    assert extract.status_code == 200, extract.text
    assert 2.9 <= float(extract.json()["audioDuration"]) <= 3.1
    usage = httpx.get(f"{server.url}/v1/usage", headers=auth).json()["data"]
    charges = [entry for entry in usage if entry["kind"] != "topup"]
    assert len(charges) == 3, usage
    # Each charge is one started minute at its SKU's price: nothing near ten hours.
    balance = httpx.get(f"{server.url}/v1/credits/balance", headers=auth).json()["balance_micro_usd"]
    assert 1_000_000 - balance < 1_000_000 // 100, balance
