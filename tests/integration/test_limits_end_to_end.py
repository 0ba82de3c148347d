"""Limits that agree end to end: an upload at the size limit and a one-hour recording go through the workflow in the
local runner — streamed to /tmp, metered, billed exactly once, transcribed — and one byte more is refused up front.

The audio is generated (never committed): the file at the limit is a WAV header over a sparse file of silence,
so it costs the disk nothing until it is read. The transcription model is an OpenAI-compatible fake on 127.0.0.1
(the embedded engine would spend minutes on silence); the path up to it is the real one.
"""

from __future__ import annotations

import struct
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.upstreams import FakeOpenAI

from earshot.errors import InvalidRequestError
from earshot.limits import MAX_UPLOAD_BYTES
from earshot.local.events import LocalContext
from earshot.local.functions import load_handler
from earshot.ports import Principal, Task
from earshot.runtime import get_runtime, reset_runtime
from earshot.schemas import UploadProcess, UploadRequestBody
from earshot.services.accounts import NewKey, create_key
from earshot.services.uploads import create_upload

PRICE_PER_MINUTE = 900


@pytest.fixture
def upstream(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as openai:
        catalog = data_dir.parent / "catalog.toml"
        catalog.write_text(
            f"""
[[models]]
sku = "whisper-fake"
kind = "transcription"
provider = "openai-transcription"
upstream_model = "whisper-1"
base_url = "{openai.url}"
credential = "env:FAKE_OPENAI_KEY"
price_micro_usd_per_minute = {PRICE_PER_MINUTE}
aliases = ["transcribe"]
"""
        )
        monkeypatch.setenv("EARSHOT_CATALOG", str(catalog))
        monkeypatch.setenv("FAKE_OPENAI_KEY", openai.api_key)
        monkeypatch.setenv("EARSHOT_ALLOW_LOOPBACK_URLS", "true")
        reset_runtime()
        openai.reply_text = "silence"
        yield openai


@pytest.fixture
def account(upstream: FakeOpenAI) -> NewKey:
    return create_key(get_runtime().store, name="limits", balance_micro_usd=10_000_000)


def _wav_header(*, data_bytes: int, rate: int, channels: int, bits: int) -> bytes:
    block = channels * bits // 8
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, bits)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def _upload(key: NewKey, size: int) -> str:
    principal = Principal(account_id=key.account.id, key_id=key.key.id)
    record, _ = create_upload(
        get_runtime(),
        principal,
        UploadRequestBody(filename="long.wav", bytes=size, process=UploadProcess(kind="transcription")),  # type: ignore[arg-type]
    )
    return record.key


def _land(object_key: str, writer: object) -> None:
    """Put the file where the local blob store keeps ``object_key`` (as the presigned POST would)."""
    path = get_runtime().blobs._path(object_key)  # type: ignore[attr-defined]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer(path)  # type: ignore[operator]


def _process(object_key: str, timeout: float = 240) -> Task:
    event = {
        "Records": [{"eventName": "ObjectCreated:Post", "s3": {"bucket": {"name": "b"}, "object": {"key": object_key}}}]
    }
    (task_id,) = load_handler("ingest")(event, LocalContext("ingest"))["tasks"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = get_runtime().tasks.get_task(task_id)
        if task is not None and task.status in ("completed", "failed"):
            return task
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} did not finish in {timeout} s")


def _debits(key: NewKey) -> list[int]:
    return [e.amount_micro_usd for e in get_runtime().store.list_ledger(key.account.id) if e.kind == "debit"]


def test_an_upload_at_the_size_limit_is_processed_by_the_workflow(account: NewKey, upstream: FakeOpenAI) -> None:
    # 192 kHz stereo 32-bit PCM: 1.536 MB/s, so the 500 MiB limit holds ~341 s of (sparse) silence.
    rate, channels, bits = 192_000, 2, 32
    data_bytes = MAX_UPLOAD_BYTES - 44
    data_bytes -= data_bytes % (channels * bits // 8)
    object_key = _upload(account, MAX_UPLOAD_BYTES)

    def write(path: Path) -> None:
        with path.open("wb") as out:
            out.write(_wav_header(data_bytes=data_bytes, rate=rate, channels=channels, bits=bits))
            out.truncate(MAX_UPLOAD_BYTES)  # sparse: the rest reads as zeros

    _land(object_key, write)
    assert get_runtime().blobs._path(object_key).stat().st_size == MAX_UPLOAD_BYTES  # type: ignore[attr-defined]

    task = _process(object_key)

    assert task.status == "completed", task.error
    seconds = data_bytes / (rate * channels * bits // 8)
    minutes = -(-int(seconds * 1000) // 60_000)
    assert _debits(account) == [-minutes * PRICE_PER_MINUTE]  # billed once, by the metered duration
    assert len(upstream.requests) == 1  # the engine saw it once, converted to fit the upstream


def test_one_byte_over_the_upload_limit_is_refused_before_anything(account: NewKey) -> None:
    with pytest.raises((InvalidRequestError, ValueError)):
        _upload(account, MAX_UPLOAD_BYTES + 1)


def test_a_one_hour_recording_completes_as_a_task_billed_exactly_once(account: NewKey, upstream: FakeOpenAI) -> None:
    object_key = _upload(account, 3600 * 16_000 * 2 + 44)

    def write(path: Path) -> None:
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16_000)
            second = b"\0\0" * 16_000
            for _ in range(3600):
                out.writeframes(second)

    _land(object_key, write)

    task = _process(object_key)

    assert task.status == "completed", task.error
    assert _debits(account) == [-60 * PRICE_PER_MINUTE]  # 60 started minutes, one debit
    assert not get_runtime().blobs.exists(object_key)  # processed audio does not stay
    # The same S3 event again (delivered twice) finds the task and charges nothing more.
    assert _process(object_key).id == task.id
    assert _debits(account) == [-60 * PRICE_PER_MINUTE]
