"""Know before charging whether a synchronous request can finish: refuse it (4xx, nothing debited) when the
engine's measured rate says it cannot, instead of answering 504 after a debit.

predicted = chunks scheduled on the workers x (chunk seconds x the engine's rate x how much slower than the
reference each worker runs where it runs) + a fixed overhead. The rates are the engines' seconds per second of
audio on the reference, one inference function (2 vCPUs), from CPU time measured on the embedded engines
(``bench/sync_rates.py``, docs/benchmarks.md). Deployed, every chunk is its own invocation (no slowdown); locally
the workers share this machine's cores (``slowdown``). A request is refused when the prediction, with a safety
margin, exceeds what is left of its deadline after metering. Upstream providers are not predicted: they answer
inside the deadline they are given or time out (refunded).
"""

from __future__ import annotations

import math

from earshot.catalog import CatalogModel
from earshot.errors import AudioTooLongForSyncError

# The reference an engine rate is measured for: the inference function's 2 vCPUs, which CTranslate2's two threads
# use at 83 % parallel efficiency (docs/decisions.md, 2026-12-01).
REFERENCE_VCPUS = 2
TWO_THREAD_EFFICIENCY = 0.83
REFERENCE_CPUS = REFERENCE_VCPUS * TWO_THREAD_EFFICIENCY
# Engine seconds per second of audio on the reference, by SKU, else by provider. Measured 2026-12-02 by
# `python -m bench.sync_rates` on 60 s of real read speech (docs/benchmarks.md), rounded up: Whisper base 9.3 CPU-s
# and tiny.en 6.1 CPU-s per 60 s on two CTranslate2 threads, / 1.66 for the reference's two vCPUs (0.094, 0.061);
# the analyzer 10.1 CPU-s per 60 s (its Whisper transcript, VAD, YAMNet, GE2E and features), counted on one vCPU
# because its numpy and onnxruntime stages do not reliably use two.
ENGINE_SEC_PER_AUDIO_SEC: dict[str, float] = {
    "whisper-base": 0.10,
    "whisper-tiny-en": 0.065,
    "embedded:whisper": 0.10,  # another Whisper SKU: as base
    "embedded:analyzer": 0.17,
}
# A shared machine or a cold engine is slower than the bench: refuse when the prediction x this exceeds the time.
SAFETY_FACTOR = 1.25
# Per chunk: an invocation (or a pool hand-off), a model already loaded, writing the chunk's audio.
PER_CHUNK_OVERHEAD_SEC = 0.5


def engine_rate(model: CatalogModel) -> float | None:
    """The measured engine seconds per audio second of ``model``'s engine, or ``None`` when it is not predicted."""
    return ENGINE_SEC_PER_AUDIO_SEC.get(model.sku, ENGINE_SEC_PER_AUDIO_SEC.get(model.provider))


def running_at_once(audio_sec: float, *, workers: int = 1, max_chunk_sec: float | None = None) -> int:
    """How many engine calls run at once on ``audio_sec`` of audio: 1 when it is not split, else its chunks up to
    ``workers``."""
    if max_chunk_sec is None or workers <= 1 or audio_sec <= max_chunk_sec:
        return 1
    return min(workers, math.ceil(audio_sec / max_chunk_sec))


def slowdown(running: int, cores: int) -> float:
    """How much slower than the reference each of ``running`` engine calls is when they share ``cores`` (locally,
    two fan-out threads on 2 cores get one core each: 1.66x); 1 when each has at least the reference's CPUs."""
    return max(1.0, REFERENCE_CPUS * max(1, running) / max(1, cores))


def predicted_sec(
    audio_sec: float, rate: float, *, workers: int = 1, max_chunk_sec: float | None = None, scale: float = 1.0
) -> float:
    """How long the engine should take on ``audio_sec`` of audio: whole when it is not split, else chunks of at
    most ``max_chunk_sec`` (as many as the fan-out makes) run ``workers`` at a time; each engine call ``scale``
    times slower than the reference (``slowdown``)."""
    if max_chunk_sec is None or workers <= 1 or audio_sec <= max_chunk_sec:
        return audio_sec * rate * scale + PER_CHUNK_OVERHEAD_SEC
    chunks = math.ceil(audio_sec / max_chunk_sec)
    rounds = math.ceil(chunks / workers)
    return rounds * (max_chunk_sec * rate * scale + PER_CHUNK_OVERHEAD_SEC)


def needed_sec(
    model: CatalogModel,
    audio_sec: float,
    *,
    workers: int = 1,
    max_chunk_sec: float | None = None,
    scale: float = 1.0,
) -> float:
    """The time to allow ``model``'s engine on ``audio_sec`` of audio (the prediction with its safety factor); 0 when
    the engine is not predicted."""
    rate = engine_rate(model)
    if rate is None:
        return 0.0
    predicted = predicted_sec(audio_sec, rate, workers=workers, max_chunk_sec=max_chunk_sec, scale=scale)
    return predicted * SAFETY_FACTOR


def refuse_if_cannot_finish(
    model: CatalogModel,
    audio_sec: float,
    remaining_sec: float,
    *,
    workers: int = 1,
    max_chunk_sec: float | None = None,
    scale: float = 1.0,
) -> None:
    """Raise ``AudioTooLongForSyncError`` (before any charge) when ``model`` cannot process ``audio_sec`` of audio in
    the ``remaining_sec`` the request has left."""
    needed = needed_sec(model, audio_sec, workers=workers, max_chunk_sec=max_chunk_sec, scale=scale)
    if needed <= remaining_sec:
        return
    raise AudioTooLongForSyncError(
        f"this {audio_sec:.0f} s recording would take about {needed:.0f} s to process with {model.sku}, and a "
        f"synchronous request has {max(0.0, remaining_sec):.0f} s left. Nothing was charged. Send it as a task "
        "instead: add async=true (or the header Prefer: respond-async) and poll GET /v1/tasks/{id}, or upload "
        "the file with POST /v1/uploads (with a 'process' spec, the task starts when the upload lands).",
        param="file",
    )
