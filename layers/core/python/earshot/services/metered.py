"""The one flow every processing route shares: stage the audio, meter it, charge, run, refund on failure."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from aws_lambda_powertools.metrics import MetricUnit

from earshot.audio.budget import decode_budget
from earshot.billing import billable_minutes, cost_micro_usd, duration_ms
from earshot.catalog import CatalogModel
from earshot.errors import AuthError, EarshotError, EngineError, NotEnabledError
from earshot.metering import MeteredAudio, meter_duration
from earshot.observability import logger, metrics
from earshot.ports import Account, Charge, LedgerEntry, Principal
from earshot.runtime import Runtime
from earshot.services.audio_input import staged_audio
from earshot.services.charging import charged

ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class AudioPayload:
    data: bytes
    filename: str = ""


@dataclass(frozen=True)
class Metered(Generic[ResultT]):
    """What a charged run produced and what it cost."""

    result: ResultT
    model: CatalogModel
    metered: MeteredAudio
    billed_seconds: float
    duration_source: str  # "measured" or "caller_hint" (a hint longer than the audio)
    debit: LedgerEntry

    @property
    def cost_micro_usd(self) -> int:
        return -self.debit.amount_micro_usd


@dataclass(frozen=True)
class Plan(Generic[ResultT]):
    """A processing request made ready to run: everything refusable has been refused already."""

    model: CatalogModel
    work: Callable[[Path, MeteredAudio], ResultT]
    label: str
    duration_hint_sec: float | None = None
    max_seconds: float | None = None


def run_plan(
    runtime: Runtime,
    principal: Principal,
    request_id: str,
    plan: Plan[ResultT],
    audio: AudioPayload,
    *,
    deadline_at: float | None = None,
) -> Metered[ResultT]:
    """The synchronous path: meter, refuse what cannot finish by ``deadline_at`` (``time.monotonic()``), debit, run
    ``plan``, refund on failure."""
    return run_metered(
        runtime,
        principal,
        request_id,
        model=plan.model,
        audio=audio,
        work=plan.work,
        label=plan.label,
        duration_hint_sec=plan.duration_hint_sec,
        max_seconds=plan.max_seconds,
        deadline_at=deadline_at,
    )


def audio_account(runtime: Runtime, principal: Principal) -> Account:
    """The caller's account, if audio routes are enabled for it."""
    account = runtime.store.get_account(principal.account_id)
    if account is None:
        raise AuthError("the API key's account no longer exists")
    if not account.audio_enabled:
        raise NotEnabledError("audio is not enabled for this account")
    return account


def run_metered(
    runtime: Runtime,
    principal: Principal,
    request_id: str,
    *,
    model: CatalogModel,
    audio: AudioPayload,
    work: Callable[[Path, MeteredAudio], ResultT],
    label: str,
    duration_hint_sec: float | None = None,
    max_seconds: float | None = None,
    deadline_at: float | None = None,
) -> Metered[ResultT]:
    """Meter ``audio``, debit its price, run ``work`` on it; refund if ``work`` fails.

    The bill follows the measured duration; a caller's ``duration_hint_sec`` can only raise it. With
    ``deadline_at`` (``time.monotonic()``), audio the engine cannot finish by then is refused before the debit
    (``earshot.services.sync_budget``).
    """
    with staged_audio(audio.data, audio.filename) as path:
        metered = meter_duration(path, ffprobe=runtime.ffprobe)
        if max_seconds is not None and metered.seconds > max_seconds:
            from earshot.errors import InvalidAudioError

            raise InvalidAudioError(
                f"the audio is {metered.seconds:.0f} s long; this route accepts at most {max_seconds:.0f} s",
                param="audio",
            )
        if deadline_at is not None:
            from earshot.services.sync_budget import refuse_if_cannot_finish

            workers, max_chunk = runtime.engine_parallelism(model)
            refuse_if_cannot_finish(
                model, metered.seconds, deadline_at - time.monotonic(), workers=workers, max_chunk_sec=max_chunk
            )
        billed, source = metered.seconds, "measured"
        if duration_hint_sec is not None and duration_hint_sec > metered.seconds:
            billed, source = duration_hint_sec, "caller_hint"
        charge = Charge(
            request_id=request_id,
            account_id=principal.account_id,
            amount_micro_usd=cost_micro_usd(model, billed),
            model=model.sku,
            duration_ms=duration_ms(billed),
            billable_minutes=billable_minutes(billed),
            description=f"{label} {billed:.3f}s",
        )
        with charged(runtime.store, charge) as debit:
            started = time.perf_counter()
            try:
                with decode_budget(metered.seconds):  # the engine never hears more than was metered
                    result = work(path, metered)
            except EarshotError:
                raise
            except Exception as exc:  # an engine bug on good audio is a provider failure, refunded
                logger.exception("engine failed", extra={"model": model.sku})
                raise EngineError(f"the {model.sku} engine failed on this audio") from exc
            elapsed_ms = (time.perf_counter() - started) * 1000

    metrics.add_metric(name="BilledMinutes", unit=MetricUnit.Count, value=charge.billable_minutes)
    metrics.add_metric(name="EngineLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    logger.info(label, extra={"model": model.sku, "duration_sec": metered.seconds, "engine_ms": round(elapsed_ms, 1)})
    return Metered(
        result=result,
        model=model,
        metered=metered,
        billed_seconds=billed,
        duration_source=source,
        debit=debit,
    )
