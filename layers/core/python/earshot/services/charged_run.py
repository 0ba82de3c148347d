"""The one charged-run pipeline: stage → meter → check limits → price → hold → run → record metrics → capture | refund.

The sync path (``run_charged``) and the async workflow's steps (``earshot.jobs.steps``) call these same
functions, so a rule changed here changes everywhere:

- ``meter_audio``: stage the bytes as a private file and measure them;
- ``check_limits``: refuse, before any charge, a run that must not start (the one place run limits live);
- ``price``: the bill follows the measured duration; a caller's duration hint can only raise it;
- ``hold``: debit the price (402 when the balance does not cover it), keyed by the request or task id;
- ``run_plan``: the engine; an unexpected exception on audio that metered fine is an ``EngineError``;
- ``record_run_metrics``: BilledMinutes and EngineLatency, on both paths;
- ``capture`` once the result is delivered, or ``refund_failed`` (which counts ProviderErrors).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from aws_lambda_powertools.metrics import MetricUnit

from earshot.audio.budget import decode_budget
from earshot.billing import billable_minutes, cost_micro_usd, duration_ms
from earshot.catalog import CatalogModel
from earshot.errors import EarshotError, EngineError, InvalidAudioError
from earshot.metering import MeteredAudio, meter_duration
from earshot.observability import logger, metrics
from earshot.ports import Charge, LedgerEntry, Principal
from earshot.runtime import Runtime
from earshot.services.audio_input import staged_audio

ResultT = TypeVar("ResultT")
RunPath = Literal["sync", "task"]
DurationSource = Literal["measured", "caller_hint"]
# Errors that mean the model side failed (not the caller): the stage's ProviderErrors alarm counts them.
PROVIDER_FAILURES = frozenset({"ProviderError", "ProviderTimeoutError", "EngineError", "States.Timeout"})


@dataclass(frozen=True)
class AudioPayload:
    data: bytes
    filename: str = ""


@dataclass(frozen=True)
class Plan(Generic[ResultT]):
    """A processing request made ready to run: everything refusable without the audio has been refused already."""

    model: CatalogModel
    work: Callable[[Path, MeteredAudio], ResultT]
    label: str
    duration_hint_sec: float | None = None
    max_seconds: float | None = None


@dataclass(frozen=True)
class Pricing:
    """What a metered run will be billed: the seconds, where they came from, and the charge itself."""

    billed_seconds: float
    duration_source: DurationSource
    charge: Charge


@dataclass(frozen=True)
class ChargedRun(Generic[ResultT]):
    """The outcome of a charged run: what the engine produced, and what it was billed."""

    result: ResultT
    model: CatalogModel
    metered: MeteredAudio
    billed_seconds: float
    duration_source: str  # "measured" or "caller_hint" (a hint longer than the audio)
    debit: LedgerEntry

    @property
    def cost_micro_usd(self) -> int:
        return -self.debit.amount_micro_usd


def meter_audio(runtime: Runtime, path: Path) -> MeteredAudio:
    """Measure staged audio (ffprobe, sample-exact where the container allows)."""
    return meter_duration(path, ffprobe=runtime.ffprobe)


def check_limits(runtime: Runtime, plan: Plan[Any], metered: MeteredAudio, *, path: RunPath) -> None:
    """Refuse, before any charge, a run that must not start.

    The one place run limits live, for the sync path (``path="sync"``) and for tasks (``"task"``): a
    route's maximum audio length today; a maximum task duration or a refusal of sync work predicted
    not to finish in time plug in here. Raise an ``EarshotError`` (nothing has been taken yet).
    """
    if plan.max_seconds is not None and metered.seconds > plan.max_seconds:
        raise InvalidAudioError(
            f"the audio is {metered.seconds:.0f} s long; this route accepts at most {plan.max_seconds:.0f} s",
            param="audio",
        )


def price(plan: Plan[Any], metered: MeteredAudio, *, request_id: str, account_id: str, description: str) -> Pricing:
    """The charge for ``plan`` on ``metered`` audio: measured seconds, or the caller's hint when it is longer."""
    billed: float = metered.seconds
    source: DurationSource = "measured"
    hint = plan.duration_hint_sec
    if hint is not None and hint > metered.seconds:
        billed, source = float(hint), "caller_hint"
    charge = Charge(
        request_id=request_id,
        account_id=account_id,
        amount_micro_usd=cost_micro_usd(plan.model, billed),
        model=plan.model.sku,
        duration_ms=duration_ms(billed),
        billable_minutes=billable_minutes(billed),
        description=f"{description} {billed:.3f}s",
    )
    return Pricing(billed_seconds=billed, duration_source=source, charge=charge)


def hold(runtime: Runtime, charge: Charge) -> LedgerEntry:
    """Debit ``charge`` (idempotent per request id; ``BillingError`` when the balance does not cover it)."""
    entry = runtime.store.debit(charge)
    logger.info(
        "debited",
        extra={"request_id": charge.request_id, "amount_micro_usd": charge.amount_micro_usd, "model": charge.model},
    )
    return entry


def run_plan(plan: Plan[ResultT], path: Path, metered: MeteredAudio) -> tuple[ResultT, float]:
    """Run the engine; returns its result and the milliseconds it took."""
    started = time.perf_counter()
    try:
        with decode_budget(metered.seconds):  # the engine never hears more than was metered
            result = plan.work(path, metered)
    except EarshotError:
        raise
    except Exception as exc:  # an engine bug on good audio is a provider failure, refunded
        logger.exception("engine failed", extra={"model": plan.model.sku})
        raise EngineError(f"the {plan.model.sku} engine failed on this audio") from exc
    return result, (time.perf_counter() - started) * 1000


def record_run_metrics(plan: Plan[Any], pricing: Pricing, metered: MeteredAudio, engine_ms: float) -> None:
    metrics.add_metric(name="BilledMinutes", unit=MetricUnit.Count, value=pricing.charge.billable_minutes)
    metrics.add_metric(name="EngineLatency", unit=MetricUnit.Milliseconds, value=engine_ms)
    logger.info(
        plan.label, extra={"model": plan.model.sku, "duration_sec": metered.seconds, "engine_ms": round(engine_ms, 1)}
    )


def refund_failed(runtime: Runtime, request_id: str, error_name: str) -> LedgerEntry | None:
    """Give back what ``request_id`` took (nothing if nothing was taken); count a provider failure."""
    entry = runtime.store.refund(request_id=request_id, reason=f"refund: {error_name}")
    if entry is not None:
        logger.info("refunded", extra={"request_id": request_id, "amount_micro_usd": entry.amount_micro_usd})
    if error_name in PROVIDER_FAILURES:
        metrics.add_metric(name="ProviderErrors", unit=MetricUnit.Count, value=1)  # the stage alarms on it
    return entry


def capture(runtime: Runtime, request_id: str) -> None:
    """The work paid for under ``request_id`` was delivered: its hold becomes final."""
    runtime.store.capture(request_id)


def run_charged(
    runtime: Runtime, principal: Principal, request_id: str, plan: Plan[ResultT], audio: AudioPayload
) -> ChargedRun[ResultT]:
    """The sync path: every step of the pipeline in one call; refunded if anything after the hold fails.

    The hold stays open: the caller ``capture``s it once the response is rendered (``deliver_charged``).
    """
    with staged_audio(audio.data, audio.filename) as path:
        metered = meter_audio(runtime, path)
        check_limits(runtime, plan, metered, path="sync")
        pricing = price(plan, metered, request_id=request_id, account_id=principal.account_id, description=plan.label)
        debit = hold(runtime, pricing.charge)
        try:
            result, engine_ms = run_plan(plan, path, metered)
        except BaseException as exc:
            refund_failed(runtime, request_id, type(exc).__name__)
            raise
    record_run_metrics(plan, pricing, metered, engine_ms)
    return ChargedRun(
        result=result,
        model=plan.model,
        metered=metered,
        billed_seconds=pricing.billed_seconds,
        duration_source=pricing.duration_source,
        debit=debit,
    )


RenderedT = TypeVar("RenderedT")


def deliver_charged(
    runtime: Runtime,
    run: ChargedRun[ResultT],
    render: Callable[[ChargedRun[ResultT]], RenderedT],
    *,
    capture: bool = True,
) -> RenderedT:
    """Render a charged run and capture its hold; a render that fails refunds it instead.

    ``capture=False`` leaves the hold open for the caller to capture once the result is truly delivered
    (an idempotent request's, once its response is stored for replay).
    """
    try:
        rendered = render(run)
    except BaseException as exc:
        refund_failed(runtime, run.debit.request_id, type(exc).__name__)
        raise
    if capture:
        runtime.store.capture(run.debit.request_id)
    return rendered
