"""Know before charging whether a synchronous request can finish: refuse it (4xx, nothing debited) when the
engine's measured rate says it cannot, instead of answering 504 after a debit.

predicted = chunks scheduled on the workers x (chunk seconds x the engine's rate) + a fixed overhead. The rates
are CPU-seconds per second of audio measured on the embedded engines (bench/, docs/benchmarks.md); a request is
refused when the prediction, with a safety margin, exceeds what is left of its deadline after metering.
Upstream providers are not predicted: they answer inside the deadline they are given or time out (refunded).
"""

from __future__ import annotations

import math

from earshot.catalog import CatalogModel
from earshot.errors import AudioTooLongForSyncError

# Engine seconds per second of audio, as the engine runs on 2 vCPUs (the inference function; this machine's 2
# cores), by SKU, else by provider; measured on real read speech (docs/benchmarks.md, docs/decisions.md):
# Whisper base 15.5 CPU-s and tiny.en 5.0 CPU-s per 60 s on two CTranslate2 threads. The analyzer transcribes too
# (its answer includes the embedded transcript), so it costs at least the recogniser.
ENGINE_SEC_PER_AUDIO_SEC: dict[str, float] = {
    "whisper-base": 0.13,
    "whisper-tiny-en": 0.042,
    "embedded:whisper": 0.13,  # another Whisper SKU: as base
    "embedded:analyzer": 0.45,
}
# A shared machine or a cold engine is slower than the bench: refuse when the prediction x this exceeds the time.
SAFETY_FACTOR = 1.25
# Per chunk: an invocation (or a pool hand-off), a model already loaded, writing the chunk's audio.
PER_CHUNK_OVERHEAD_SEC = 0.5


def engine_rate(model: CatalogModel) -> float | None:
    """The measured engine seconds per audio second of ``model``'s engine, or ``None`` when it is not predicted."""
    return ENGINE_SEC_PER_AUDIO_SEC.get(model.sku, ENGINE_SEC_PER_AUDIO_SEC.get(model.provider))


def predicted_sec(audio_sec: float, rate: float, *, workers: int = 1, max_chunk_sec: float | None = None) -> float:
    """How long the engine should take on ``audio_sec`` of audio: whole when it is not split, else chunks of at
    most ``max_chunk_sec`` (as many as the fan-out makes) run ``workers`` at a time."""
    if max_chunk_sec is None or workers <= 1 or audio_sec <= max_chunk_sec:
        return audio_sec * rate + PER_CHUNK_OVERHEAD_SEC
    chunks = math.ceil(audio_sec / max_chunk_sec)
    rounds = math.ceil(chunks / workers)
    return rounds * (max_chunk_sec * rate + PER_CHUNK_OVERHEAD_SEC)


def needed_sec(model: CatalogModel, audio_sec: float, *, workers: int = 1, max_chunk_sec: float | None = None) -> float:
    """The time to allow ``model``'s engine on ``audio_sec`` of audio (the prediction with its safety factor); 0 when
    the engine is not predicted."""
    rate = engine_rate(model)
    if rate is None:
        return 0.0
    return predicted_sec(audio_sec, rate, workers=workers, max_chunk_sec=max_chunk_sec) * SAFETY_FACTOR


def refuse_if_cannot_finish(
    model: CatalogModel,
    audio_sec: float,
    remaining_sec: float,
    *,
    workers: int = 1,
    max_chunk_sec: float | None = None,
) -> None:
    """Raise ``AudioTooLongForSyncError`` (before any charge) when ``model`` cannot process ``audio_sec`` of audio in
    the ``remaining_sec`` the request has left."""
    needed = needed_sec(model, audio_sec, workers=workers, max_chunk_sec=max_chunk_sec)
    if needed <= remaining_sec:
        return
    raise AudioTooLongForSyncError(
        f"this {audio_sec:.0f} s recording would take about {needed:.0f} s to process with {model.sku}, and a "
        f"synchronous request has {max(0.0, remaining_sec):.0f} s left. Nothing was charged. Send it as a task "
        "instead: add async=true (or the header Prefer: respond-async) and poll GET /v1/tasks/{id}, or upload "
        "the file with POST /v1/uploads (with a 'process' spec, the task starts when the upload lands).",
        param="file",
    )
