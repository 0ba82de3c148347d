"""Limits that agree end to end: an upload at the size limit and a one-hour recording go through the workflow in the
local runner — streamed to /tmp, metered, billed exactly once, transcribed — and one byte more is refused up front.

The audio is generated (never committed): the file at the limit is a WAV header over a sparse file of silence,
so it costs the disk nothing until it is read. Each case runs twice: with an OpenAI-compatible fake on 127.0.0.1
(the whole audio in one Map iteration, converted for the upstream), and with the embedded engine, where the
workflow cuts the audio at silences and its Map state runs only the chunks with speech (the one-hour recording
carries real read speech at three known places, which must come back there).
"""

from __future__ import annotations

import struct
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.upstreams import FakeOpenAI
from recordings import LIBRIVOX_DIR, requires_testdata

from earshot.billing import cost_micro_usd
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
        catalog.write_text(openai.catalog_entry(price_micro_usd_per_minute=PRICE_PER_MINUTE))
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


def _upload(key: NewKey, size: int, **options: Any) -> str:
    principal = Principal(account_id=key.account.id, key_id=key.key.id)
    process = UploadProcess(kind="transcription", options=options)
    record, _ = create_upload(
        get_runtime(), principal, UploadRequestBody(filename="long.wav", bytes=size, process=process)
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

    assert task.status == "completed" and task.results is not None, task.error
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

    assert task.status == "completed" and task.results is not None, task.error
    assert _debits(account) == [-60 * PRICE_PER_MINUTE]  # 60 started minutes, one debit
    assert not get_runtime().blobs.exists(object_key)  # processed audio does not stay
    # The same S3 event again (delivered twice) finds the task and charges nothing more.
    assert _process(object_key).id == task.id
    assert _debits(account) == [-60 * PRICE_PER_MINUTE]


# -- the embedded engine: the workflow's chunks ------------------------------------------------------------------
@pytest.fixture
def embedded_account(data_dir: Path) -> NewKey:
    return create_key(get_runtime().store, name="limits", balance_micro_usd=10_000_000)


def _embedded_price(seconds: float) -> int:
    return cost_micro_usd(get_runtime().catalog.resolve_transcription("transcribe"), seconds)


def test_an_upload_at_the_size_limit_is_processed_by_the_embedded_engines_workflow(embedded_account: NewKey) -> None:
    rate, channels, bits = 192_000, 2, 32
    data_bytes = MAX_UPLOAD_BYTES - 44
    data_bytes -= data_bytes % (channels * bits // 8)
    object_key = _upload(embedded_account, MAX_UPLOAD_BYTES)

    def write(path: Path) -> None:
        with path.open("wb") as out:
            out.write(_wav_header(data_bytes=data_bytes, rate=rate, channels=channels, bits=bits))
            out.truncate(MAX_UPLOAD_BYTES)

    _land(object_key, write)

    task = _process(object_key)

    assert task.status == "completed" and task.results is not None, task.error
    seconds = data_bytes / (rate * channels * bits // 8)
    # Decoded whole (within the metered budget), cut at silences: no speech anywhere, so no chunk ran an engine.
    (body,) = task.results
    assert body["text"] == "" and body["segments"] == []
    assert body["duration"] == round(seconds, 3) and body["billing"]["duration_sec"] == round(seconds, 3)
    assert _debits(embedded_account) == [-_embedded_price(seconds)]


@requires_testdata
def test_a_one_hour_recording_completes_as_a_task_of_chunks_billed_exactly_once(embedded_account: NewKey) -> None:
    clips = []
    for path in sorted(LIBRIVOX_DIR.glob("*.wav"))[:3]:
        with wave.open(str(path)) as handle:
            clips.append(handle.readframes(handle.getnframes()))
    placed = {30: clips[0], 1800: clips[1], 3540: clips[2]}  # seconds into the hour: start, middle, last minute
    object_key = _upload(embedded_account, 3600 * 16_000 * 2 + 44, response_format="verbose_json")

    def write(path: Path) -> None:
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16_000)
            second = b"\0\0" * 16_000
            at = 0
            while at < 3600:
                if at in placed:
                    clip = placed[at]
                    out.writeframes(clip)
                    pad = -len(clip) % (2 * 16_000)
                    out.writeframes(b"\0" * pad)
                    at += (len(clip) + pad) // (2 * 16_000)
                else:
                    out.writeframes(second)
                    at += 1

    _land(object_key, write)

    task = _process(object_key, timeout=900)

    assert task.status == "completed" and task.results is not None, task.error
    assert _debits(embedded_account) == [-_embedded_price(3600.0)]  # 60 started minutes, one debit
    per_minute = get_runtime().catalog.resolve_transcription("transcribe").price_micro_usd_per_minute
    assert _embedded_price(3600.0) == 60 * per_minute
    (body,) = task.results
    assert body["duration"] == 3600.0 and body["text"].strip()
    # The words come back where the speech is on the hour's timeline: each clip's segments inside its place.
    starts = [segment["start"] for segment in body["segments"]]
    for at, clip in placed.items():
        length = len(clip) / (2 * 16_000)
        assert any(at - 0.5 <= start <= at + length for start in starts), (at, starts)
    assert all(any(at - 0.5 <= start <= at + 8 for at in placed) for start in starts), starts
    # The same S3 event again finds the task and charges nothing more.
    assert _process(object_key).id == task.id
    assert _debits(embedded_account) == [-_embedded_price(3600.0)]
