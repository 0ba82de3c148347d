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

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from aws_lambda_powertools.metrics import MetricUnit

from earshot.audio.budget import decode_budget
from earshot.billing import billable_minutes, cost_micro_usd, duration_ms
from earshot.catalog import CatalogModel
from earshot.engines.base import Transcript
from earshot.errors import EarshotError, EngineError, InvalidAudioError
from earshot.limits import MAX_TASK_AUDIO_SEC
from earshot.metering import MeteredAudio, meter_duration
from earshot.observability import logger, metrics
from earshot.ports import Charge, LedgerEntry, Principal
from earshot.runtime import Runtime
from earshot.services.audio_input import staged_audio
from earshot.uploaded import StagedUpload

ResultT = TypeVar("ResultT")
T = TypeVar("T")
RunPath = Literal["sync", "task"]
DurationSource = Literal["measured", "caller_hint"]
# Errors that mean the model side failed (not the caller): the stage's ProviderErrors alarm counts them.
PROVIDER_FAILURES = frozenset({"ProviderError", "ProviderTimeoutError", "EngineError", "States.Timeout"})


@dataclass(frozen=True)
class AudioPayload:
    data: bytes | StagedUpload  # a staged upload is used in place (earshot.uploaded)
    filename: str = ""


@dataclass(frozen=True)
class ChunkedWork(Generic[ResultT]):
    """How a plan runs piecewise on long audio, for a task's Map state (``earshot.jobs.steps``).

    ``transcribe`` runs the engine on one chunk's audio in a language (``None``: let it detect one); ``finish`` turns
    the chunks' merged transcript into the plan's result with the whole recording at hand (diarization labels
    speakers over all of it, so they are one set across chunks). Audio up to ``max_chunk_sec`` runs whole
    (``Plan.work``).
    """

    max_chunk_sec: float
    transcribe: Callable[[Path, str | None], Transcript]
    finish: Callable[[Path, Transcript], ResultT]
    language: str | None = None


@dataclass(frozen=True)
class Plan(Generic[ResultT]):
    """A processing request made ready to run: everything refusable without the audio has been refused already."""

    model: CatalogModel
    work: Callable[[Path, MeteredAudio], ResultT]
    label: str
    duration_hint_sec: float | None = None
    max_seconds: float | None = None
    chunked: ChunkedWork[ResultT] | None = None  # set when long audio may be cut into chunks run in parallel


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


def check_limits(
    runtime: Runtime, plan: Plan[Any], metered: MeteredAudio, *, path: RunPath, time_left_sec: float | None = None
) -> None:
    """Refuse, before any charge, a run that must not start. The one place run limits live.

    ``path`` says which run this is; ``time_left_sec`` is what the engine has: the rest of a sync request's
    deadline, or a task's engine step timeout. Raise an ``EarshotError`` (nothing has been taken yet):

    - the route's maximum audio length (``Plan.max_seconds``);
    - a task's maximum audio length (``limits.MAX_TASK_AUDIO_SEC``);
    - audio the engine is predicted not to finish in ``time_left_sec`` (``services.sync_budget``): a sync request
      gets 413 ``audio_too_long_for_sync`` (send it as a task), a task a 400 (split it, or a faster model).
    """
    if plan.max_seconds is not None and metered.seconds > plan.max_seconds:
        raise InvalidAudioError(
            f"the audio is {metered.seconds:.0f} s long; this route accepts at most {plan.max_seconds:.0f} s",
            param="audio",
        )
    if path == "task" and metered.seconds > MAX_TASK_AUDIO_SEC:
        raise InvalidAudioError(
            f"the audio is {metered.seconds:.0f} s long; a task takes at most {MAX_TASK_AUDIO_SEC / 3600:.0f} hours"
            " of audio"
        )
    if time_left_sec is None:
        return
    from earshot.services.sync_budget import needed_sec, refuse_if_cannot_finish, running_at_once, slowdown

    model = plan.model
    workers, max_chunk = runtime.engine_parallelism(model)
    # Deployed, every engine call (every chunk) is its own inference invocation, at the measured rate; locally the
    # calls that run at once share this machine's cores.
    remote = runtime.settings.runtime == "aws" or runtime.settings.inference_function is not None
    running = running_at_once(metered.seconds, workers=workers, max_chunk_sec=max_chunk)
    scale = 1.0 if remote else slowdown(running, os.cpu_count() or 1)
    if path == "task" and plan.chunked is not None:
        # A task's chunks are iterations of a Map state, each its own step: each chunk must fit that step's time.
        max_chunk = plan.chunked.max_chunk_sec
        workers = max(1, math.ceil(metered.seconds / max_chunk))
    if path == "sync":
        refuse_if_cannot_finish(
            model, metered.seconds, time_left_sec, workers=workers, max_chunk_sec=max_chunk, scale=scale
        )
        return
    # Nothing is held for audio the engine step cannot finish in its time (it would time out and be refunded).
    needed = needed_sec(model, metered.seconds, workers=workers, max_chunk_sec=max_chunk, scale=scale)
    if needed > time_left_sec:
        raise InvalidAudioError(
            f"the audio is {metered.seconds:.0f} s long and {model.sku} would need about {needed:.0f} s for it; a"
            f" task's engine step has {time_left_sec:.0f} s. Split the recording, or choose a faster model"
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
    return run_engine_call(plan.model, lambda: plan.work(path, metered), budget_sec=metered.seconds)


def run_engine_call(model: CatalogModel, call: Callable[[], T], *, budget_sec: float) -> tuple[T, float]:
    """``call`` an engine on at most ``budget_sec`` of audio (its decoders stop there); its result and milliseconds.
    An unexpected exception on audio that metered fine is an ``EngineError`` (a provider failure, refunded)."""
    started = time.perf_counter()
    try:
        with decode_budget(budget_sec):  # the engine never hears more than was metered
            result = call()
    except EarshotError:
        raise
    except Exception as exc:  # an engine bug on good audio is a provider failure, refunded
        logger.exception("engine failed", extra={"model": model.sku})
        raise EngineError(f"the {model.sku} engine failed on this audio") from exc
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
    runtime: Runtime,
    principal: Principal,
    request_id: str,
    plan: Plan[ResultT],
    audio: AudioPayload,
    *,
    deadline_at: float | None = None,
) -> ChargedRun[ResultT]:
    """The sync path: every step of the pipeline in one call; refunded if anything after the hold fails.

    ``deadline_at`` (``time.monotonic()``) is when the request must have answered. The hold stays open: the
    caller captures it once the response is rendered (``deliver_charged``).
    """
    with staged_audio(audio.data, audio.filename) as path:
        metered = meter_audio(runtime, path)
        time_left = None if deadline_at is None else deadline_at - time.monotonic()
        check_limits(runtime, plan, metered, path="sync", time_left_sec=time_left)
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
