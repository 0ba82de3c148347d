"""Transcription and translation: meter, debit, run the engine, refund on failure."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from aws_lambda_powertools.metrics import MetricUnit

from earshot.billing import billable_minutes, cost_micro_usd, duration_ms
from earshot.catalog import CatalogModel
from earshot.engines.base import Transcript, TranscriptionOptions
from earshot.errors import AuthError, EarshotError, EngineError, NotEnabledError
from earshot.metering import MeteredAudio, meter_duration
from earshot.observability import logger, metrics
from earshot.ports import Account, Charge, LedgerEntry, Principal
from earshot.runtime import Runtime
from earshot.services.audio_input import staged_audio
from earshot.services.charging import charged


@dataclass(frozen=True)
class TranscriptionJob:
    audio: bytes
    filename: str
    model: str
    task: Literal["transcribe", "translate"] = "transcribe"
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    word_timestamps: bool = False
    deadline_sec: float | None = None


@dataclass(frozen=True)
class TranscriptionOutcome:
    transcript: Transcript
    model: CatalogModel
    metered: MeteredAudio
    debit: LedgerEntry


def audio_account(runtime: Runtime, principal: Principal) -> Account:
    """The caller's account, if audio routes are enabled for it."""
    account = runtime.store.get_account(principal.account_id)
    if account is None:
        raise AuthError("the API key's account no longer exists")
    if not account.audio_enabled:
        raise NotEnabledError("audio is not enabled for this account")
    return account


def transcribe(runtime: Runtime, principal: Principal, request_id: str, job: TranscriptionJob) -> TranscriptionOutcome:
    """Meter ``job.audio``, charge for it, and transcribe it; a failure after the debit is refunded."""
    audio_account(runtime, principal)
    model = runtime.catalog.resolve_transcription(job.model, translate=job.task == "translate")
    engine = runtime.transcription_engine(model)
    options = TranscriptionOptions(
        task=job.task,
        language=job.language,
        prompt=job.prompt,
        temperature=job.temperature,
        word_timestamps=job.word_timestamps,
        upstream_model=model.upstream_model,
        deadline_sec=job.deadline_sec,
    )
    engine.check(options)

    with staged_audio(job.audio, job.filename) as path:
        metered = meter_duration(path, ffprobe=runtime.ffprobe)
        charge = Charge(
            request_id=request_id,
            account_id=principal.account_id,
            amount_micro_usd=cost_micro_usd(model, metered.seconds),
            model=model.sku,
            duration_ms=duration_ms(metered.seconds),
            billable_minutes=billable_minutes(metered.seconds),
            description=f"{job.task} {metered.seconds:.3f}s",
        )
        with charged(runtime.store, charge) as debit:
            started = time.perf_counter()
            try:
                transcript = engine.transcribe(path, options)
            except EarshotError:
                raise
            except Exception as exc:  # an engine bug on good audio is a provider failure, refunded
                logger.exception("engine failed", extra={"model": model.sku})
                raise EngineError(f"the {model.sku} engine failed on this audio") from exc
            elapsed_ms = (time.perf_counter() - started) * 1000

    metrics.add_metric(name="BilledMinutes", unit=MetricUnit.Count, value=charge.billable_minutes)
    metrics.add_metric(name="EngineLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    logger.info(
        "transcribed",
        extra={"model": model.sku, "duration_sec": metered.seconds, "engine_ms": round(elapsed_ms, 1)},
    )
    return TranscriptionOutcome(transcript=transcript, model=model, metered=metered, debit=debit)
