"""A synchronous request that cannot finish in its time is refused before any charge (413 naming async and
/v1/uploads), never answered 504 after a debit; one that can is served. Tasks have a documented audio limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audio_fixtures import audio_bytes

from earshot import errors
from earshot.catalog import CatalogModel
from earshot.limits import MAX_TASK_AUDIO_SEC
from earshot.local.server import LocalGateway
from earshot.runtime import get_runtime, reset_runtime
from earshot.services.accounts import NewKey, create_key
from earshot.services.sync_budget import SAFETY_FACTOR, needed_sec, predicted_sec, refuse_if_cannot_finish

DEADLINE_SEC = 8.0


def _transcribe(key: NewKey, wav: bytes) -> tuple[int, dict[str, object]]:
    body = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n' + wav + b"\r\n--B--\r\n"
    # As `earshot serve` builds it: the gateway's deadline is the documented local setting.
    gateway = LocalGateway(max_request_bytes=26 * 1024 * 1024, timeout_sec=get_runtime().settings.request_timeout_sec)
    response = gateway.handle(
        method="POST",
        path="/v1/audio/transcriptions",
        raw_query="",
        headers={"Authorization": f"Bearer {key.secret}", "Content-Type": "multipart/form-data; boundary=B"},
        body=body,
    )
    return response.status, json.loads(response.body)


@pytest.fixture
def short_deadline(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> NewKey:
    # The documented local setting: seconds a synchronous request may take (EARSHOT_REQUEST_TIMEOUT_SEC).
    monkeypatch.setenv("EARSHOT_REQUEST_TIMEOUT_SEC", str(DEADLINE_SEC))
    reset_runtime()
    assert get_runtime().settings.request_timeout_sec == DEADLINE_SEC
    return create_key(get_runtime().store, name="t", balance_micro_usd=1_000_000)


def test_audio_that_cannot_finish_in_time_is_refused_before_any_charge(short_deadline: NewKey) -> None:
    # Five minutes: whisper-base needs ~15.5 CPU-s per 60 s (docs/benchmarks.md), so even split into 60-s chunks on
    # this machine's workers it cannot finish in 8 s; the prediction says so too.
    seconds = 300.0
    model = get_runtime().catalog.resolve_transcription("transcribe")
    workers, max_chunk = get_runtime().engine_parallelism(model)
    assert needed_sec(model, seconds, workers=workers, max_chunk_sec=max_chunk) > DEADLINE_SEC
    status, body = _transcribe(short_deadline, audio_bytes("wav", seconds, sample_rate=16000))
    assert status == 413
    error = body["error"]
    assert isinstance(error, dict) and error["code"] == "audio_too_long_for_sync"
    assert "async=true" in error["message"] and "/v1/uploads" in error["message"]
    assert "Nothing was charged" in error["message"]
    account = get_runtime().store.get_account(short_deadline.account.id)
    assert account is not None and account.balance_micro_usd == 1_000_000
    assert get_runtime().store.list_ledger(short_deadline.account.id) == [] or all(
        entry.kind != "debit" for entry in get_runtime().store.list_ledger(short_deadline.account.id)
    )


def test_audio_that_fits_the_time_is_served(short_deadline: NewKey) -> None:
    status, body = _transcribe(short_deadline, audio_bytes("wav", 2.0, sample_rate=16000))
    assert status == 200, body


def _model(provider: str) -> CatalogModel:
    return CatalogModel(sku="m", kind="transcription", provider=provider, price_micro_usd_per_minute=1)


def test_the_prediction_divides_by_the_parallel_chunks() -> None:
    whole = predicted_sec(600.0, 0.2)
    fanned = predicted_sec(600.0, 0.2, workers=10, max_chunk_sec=60.0)
    assert whole == pytest.approx(120.5)
    assert fanned == pytest.approx(60 * 0.2 + 0.5)
    # A ten-minute recording: refused whole in 25 s, served when fifteen 40-s chunks run at once.
    with pytest.raises(errors.AudioTooLongForSyncError):
        refuse_if_cannot_finish(_model("embedded:whisper"), 600.0, 25.0)
    refuse_if_cannot_finish(_model("embedded:whisper"), 600.0, 25.0, workers=15, max_chunk_sec=40.0)
    assert (40 * 0.2 + 0.5) * SAFETY_FACTOR <= 25.0


def test_upstream_models_are_not_predicted() -> None:
    model = CatalogModel(
        sku="u",
        kind="transcription",
        provider="openai-transcription",
        price_micro_usd_per_minute=1,
        credential="env:X",
        upstream_model="whisper-1",
        base_url="https://api.openai.com/v1",
    )
    refuse_if_cannot_finish(model, 3600.0, 1.0)  # the upstream gets the deadline and answers or times out


def test_a_task_takes_at_most_the_documented_audio_length() -> None:
    assert MAX_TASK_AUDIO_SEC == 4 * 3600


def test_locally_the_chunks_that_run_at_once_share_the_cores_and_deployed_each_has_the_reference() -> None:
    from earshot.services.sync_budget import REFERENCE_CPUS, running_at_once, slowdown

    assert running_at_once(30.0, workers=2, max_chunk_sec=60.0) == 1  # not split: one engine call
    assert running_at_once(600.0, workers=2, max_chunk_sec=60.0) == 2
    assert running_at_once(150.0, workers=10, max_chunk_sec=60.0) == 3
    assert slowdown(1, 2) == 1.0  # one call on two cores has the reference's 2 vCPUs
    assert slowdown(2, 2) == pytest.approx(REFERENCE_CPUS)  # two chunks on two cores: one core each
    # A 60-s chunk of whisper-base: ~6 s on an inference function, 1.66 times that on one core of this machine.
    rate = 0.10
    deployed = predicted_sec(600.0, rate, workers=10, max_chunk_sec=60.0)
    local = predicted_sec(600.0, rate, workers=2, max_chunk_sec=60.0, scale=slowdown(2, 2))
    assert deployed == pytest.approx(60 * rate + 0.5)
    assert local == pytest.approx(5 * (60 * rate * REFERENCE_CPUS + 0.5))


def test_the_rates_are_the_measured_ones_on_the_reference() -> None:
    from earshot.services.sync_budget import ENGINE_SEC_PER_AUDIO_SEC, REFERENCE_CPUS

    # bench/sync_rates.py, 2026-12-02 (docs/benchmarks.md): CPU seconds per 60 s of read speech.
    measured_cpu = {"whisper-base": 9.3, "whisper-tiny-en": 6.1}
    for sku, cpu in measured_cpu.items():
        assert cpu / 60 / REFERENCE_CPUS <= ENGINE_SEC_PER_AUDIO_SEC[sku] <= 1.2 * cpu / 60 / REFERENCE_CPUS, sku
    assert 10.1 / 60 <= ENGINE_SEC_PER_AUDIO_SEC["embedded:analyzer"] <= 1.2 * 10.1 / 60
