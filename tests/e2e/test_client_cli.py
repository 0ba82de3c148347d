"""The client CLI (earshot transcribe|understand|extract|tasks|usage) against a real `earshot serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from local_server import LocalServer
from speech_fixtures import requires_espeak, speak

SENTENCE = "hello world this is a test of the speech engine"


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speak(tmp_path_factory.mktemp("cli-speech") / "hello.wav", SENTENCE, fmt="wav")


def earshot(server: LocalServer, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EARSHOT_BASE_URL": server.url, "EARSHOT_API_KEY": key}
    return subprocess.run(
        [sys.executable, "-m", "earshot.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def _heard(text: str) -> int:
    return len(set(text.lower().split()) & set(SENTENCE.split()))


@requires_espeak
def test_transcribe_prints_text_and_writes_subtitles(server: LocalServer, speech: Path, tmp_path: Path) -> None:
    key = server.create_key()
    done = earshot(server, key, "transcribe", str(speech))
    assert done.returncode == 0, done.stderr
    assert _heard(done.stdout) >= 3, done.stdout
    out = tmp_path / "hello.srt"
    done = earshot(server, key, "transcribe", str(speech), "--format", "srt", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith("1\n00:00:") and " --> " in out.read_text()


@requires_espeak
def test_a_file_above_the_inline_limit_is_uploaded_with_progress_and_followed(
    server: LocalServer, speech: Path
) -> None:
    key = server.create_key()
    done = earshot(server, key, "transcribe", str(speech), "--inline-limit-mb", "0.05", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert f"uploading {speech.name}: 100%" in done.stderr  # the upload's progress bar
    assert "task-transcription-" in done.stderr and "100%" in done.stderr.split("uploading")[-1]  # the task's
    result = json.loads(done.stdout)
    assert _heard(result["text"]) >= 3 and result["billing"]["cost_micro_usd"] == 900


@requires_espeak
def test_async_stream_understand_extract_tasks_and_usage(server: LocalServer, speech: Path) -> None:
    key = server.create_key()
    followed = earshot(server, key, "transcribe", str(speech), "--async", "--format", "verbose_json")
    assert followed.returncode == 0, followed.stderr
    assert json.loads(followed.stdout)["segments"]
    streamed = earshot(server, key, "transcribe", str(speech), "--stream")
    assert streamed.returncode == 0 and _heard(streamed.stdout) >= 3, streamed.stderr
    understood = earshot(server, key, "understand", str(speech), "-q", "Is there speech?")
    assert understood.returncode == 0 and "speech" in understood.stdout.lower(), understood.stderr
    extracted = earshot(server, key, "extract", str(speech), "-p", "Summarise", "--json")
    assert extracted.returncode == 0 and "creditUsage" in json.loads(extracted.stdout), extracted.stderr
    usage = earshot(server, key, "usage", "--json")
    ledger = json.loads(usage.stdout)["usage"]["data"]
    assert [entry["kind"] for entry in ledger].count("debit") == 4
    task_id = ledger[-2]["request_id"]  # the oldest debit: the async transcription's task
    shown = earshot(server, key, "tasks", "get", task_id)
    assert json.loads(shown.stdout)["status"] == "completed"
    assert earshot(server, key, "tasks", "delete", task_id).returncode == 0


def test_errors_print_the_envelope_message_and_exit_non_zero(server: LocalServer, tmp_path: Path) -> None:
    key = server.create_key()
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF not really audio")
    refused = earshot(server, key, "transcribe", str(audio), "--model", "no-such-model")
    assert refused.returncode == 1 and "no-such-model" in refused.stderr and "Traceback" not in refused.stderr
    unauthorized = earshot(server, "sk-es-wrong", "usage")
    assert unauthorized.returncode == 1 and "API key" in unauthorized.stderr
    missing = earshot(server, key, "tasks", "get", "task-nope")
    assert missing.returncode == 1 and "no task" in missing.stderr
    unreachable = subprocess.run(
        [sys.executable, "-m", "earshot.cli", "usage", "--base-url", "http://127.0.0.1:9", "--api-key", key],
        capture_output=True,
        text=True,
    )
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
