"""Long audio in parallel: the per-chunk engine time, the deployed 10-minute sync fan-out modelled from it, and the
same plan exercised locally on a worker pool standing in for invocations.

`python -m bench.fanout` prints its section; `make bench` puts it in docs/benchmarks.md.

Audio: real read speech (Debian pocketsphinx-testdata's LibriVox clips, 16 kHz), concatenated with 0.6 s of
silence between clips, so the speech regions are known by construction (the plan is cut on them).
"""

from __future__ import annotations

import math
import os
import resource
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

from earshot.engines.base import TranscriptionOptions
from earshot.engines.fanout import ChunkedTranscriptionEngine, plan_chunks

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
RATE = 16_000
GAP_SEC = 0.6
CHUNK_SEC = 60.0
# Lambda: CPU in proportion to memory, 1,769 MB per vCPU (infra.constants.LAMBDA_MB_PER_VCPU); the inference
# function has 2 (infra.constants.INFERENCE_VCPUS). Two engine threads on two vCPUs ran at 83 % efficiency
# (docs/decisions.md, 2026-12-01).
INFERENCE_VCPUS = 2
TWO_THREAD_EFFICIENCY = 0.83
# What the model adds per chunk: a synchronous invoke (~30 ms), the chunk's WAV inline (1.9 MB base64: ~50 ms each
# way), decoding it (~20 ms); and once per request: decoding 10 minutes (~0.6 s) and VAD in the inference function
# (Silero at ~0.003 CPU-s per audio-s: ~2 s for 10 minutes, plus an invoke).
PER_CHUNK_OVERHEAD_SEC = 0.15
PER_REQUEST_OVERHEAD_SEC = 0.6 + 2.0 + 0.1
# A cold inference function: pulling the ~1.1 GB image lazily and loading Whisper (~1-3 s for the model, several
# seconds for the first image pages). Counted once: the ten invocations start together.
COLD_START_SEC = 8.0
TARGET_SEC = 25.0


def _speech(seconds: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
    clips = []
    for path in sorted(LIBRIVOX.glob("*.wav")):
        with wave.open(str(path)) as handle:
            clips.append(np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16))
    if not clips:
        raise SystemExit("pocketsphinx-testdata is not installed: run `make setup`")
    gap = np.zeros(int(GAP_SEC * RATE), dtype=np.int16)
    pieces, regions, position = [], [], 0.0
    while position < seconds:
        for clip in clips:
            pieces += [clip, gap]
            regions.append((position, position + len(clip) / RATE))
            position += (len(clip) + len(gap)) / RATE
            if position >= seconds:
                break
    pcm = np.concatenate(pieces)[: int(seconds * RATE)]
    return pcm, [(start, min(end, seconds)) for start, end in regions if start < seconds]


def _write(path: Path, pcm: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return path


class _Span:
    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end


def _engine() -> tuple[Any, str, str]:
    from earshot.runtime import get_runtime

    runtime = get_runtime()
    model = runtime.catalog.resolve_transcription("transcribe")
    engine = runtime.transcription_engine(model)
    inner = getattr(engine, "_inner", engine)  # the recogniser itself, not the runtime's own fan-out
    return inner, model.sku, model.provider


def per_chunk(directory: Path) -> dict[str, Any]:
    """The engine on one 60-s chunk of speech, warm: wall and CPU seconds (one thread unless the engine uses more)."""
    engine, sku, provider = _engine()
    pcm, _ = _speech(CHUNK_SEC)
    path = _write(directory / "chunk.wav", pcm)
    engine.transcribe(_write(directory / "warm.wav", pcm[: 5 * RATE]), TranscriptionOptions(language="en"))
    started, cpu = time.perf_counter(), time.process_time()
    engine.transcribe(path, TranscriptionOptions(language="en"))
    return {
        "sku": sku,
        "threads": 1 if provider in SINGLE_THREADED else INFERENCE_VCPUS,
        "wall_sec": round(time.perf_counter() - started, 2),
        "cpu_sec": round(time.process_time() - cpu, 2),
        "load": round(os.getloadavg()[0], 2),
    }


# Engines that decode on one thread whatever the vCPUs (the rest, CTranslate2's Whisper, use INFERENCE_VCPUS).
SINGLE_THREADED: frozenset[str] = frozenset()


def modelled(
    cpu_per_chunk_sec: float, *, threads: int = INFERENCE_VCPUS, audio_sec: float = 600.0, invocations: int = 10
) -> dict[str, Any]:
    """The deployed sync fan-out of ``audio_sec``: ``invocations`` chunks at once on 2-vCPU inference functions, the
    engine using ``threads`` of them."""
    chunks = math.ceil(audio_sec / CHUNK_SEC)
    rounds = math.ceil(chunks / invocations)
    speedup = threads * TWO_THREAD_EFFICIENCY if threads > 1 else 1.0
    chunk_wall = cpu_per_chunk_sec / speedup
    warm = PER_REQUEST_OVERHEAD_SEC + rounds * (chunk_wall + PER_CHUNK_OVERHEAD_SEC)
    return {
        "threads": threads,
        "chunks": chunks,
        "rounds": rounds,
        "chunk_wall_sec": round(chunk_wall, 2),
        "warm_sec": round(warm, 1),
        "cold_sec": round(warm + COLD_START_SEC, 1),
    }


def local_pool(directory: Path, audio_sec: float = 120.0, workers: int | None = None) -> dict[str, Any]:
    """The same plan on this machine: a worker pool of threads standing in for the invocations."""
    engine, sku, _ = _engine()
    workers = workers or os.cpu_count() or 1
    pcm, spans = _speech(audio_sec)
    path = _write(directory / "long.wav", pcm)
    regions = [_Span(start, end) for start, end in spans]
    plan = plan_chunks(regions, audio_sec, max_chunk_sec=CHUNK_SEC)
    fan = ChunkedTranscriptionEngine(
        engine, workers=workers, max_chunk_sec=CHUNK_SEC, speech_regions=lambda audio, pcm: regions
    )
    started = time.perf_counter()
    merged = fan.transcribe(path, TranscriptionOptions(language="en"))
    wall = time.perf_counter() - started
    serial_started = time.perf_counter()
    ChunkedTranscriptionEngine(
        engine, workers=1, max_chunk_sec=CHUNK_SEC, speech_regions=lambda audio, pcm: regions
    ).transcribe(path, TranscriptionOptions(language="en"))
    serial = time.perf_counter() - serial_started
    return {
        "sku": sku,
        "audio_sec": audio_sec,
        "chunks": len(plan.chunks),
        "workers": workers,
        "wall_sec": round(wall, 1),
        "serial_sec": round(serial, 1),
        "speedup": round(serial / wall, 2) if wall else None,
        "words": len(merged.text.split()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load": round(os.getloadavg()[0], 2),
    }


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="earshot-bench-fanout-") as tmp:
        chunk = per_chunk(Path(tmp))
        pool = local_pool(Path(tmp))
    return {"per_chunk": chunk, "model": modelled(chunk["cpu_sec"], threads=chunk["threads"]), "local": pool}


def render(results: dict[str, Any]) -> list[str]:
    chunk, model, pool = results["per_chunk"], results["model"], results["local"]
    verdict = (
        "meets" if model["cold_sec"] <= TARGET_SEC else ("meets warm" if model["warm_sec"] <= TARGET_SEC else "MISSES")
    )
    return [
        "",
        "## Long audio: the 10-minute sync fan-out",
        "",
        "Method: `bench/fanout.py`. Real read speech (LibriVox clips from pocketsphinx-testdata, 0.6 s of silence",
        f"between clips). Per-chunk engine time: the catalog's `transcribe` engine ({chunk['sku']}) on one warm",
        "60-s chunk, CPU seconds (steady on a shared machine) and wall. The deployed figure is modelled from it:",
        f"{model['chunks']} chunks of 60 s, ten inference invocations at once ({model['rounds']} round),"
        " each on 2 vCPUs",
        f"(3,538 MB), the engine on {model['threads']} thread(s) (83 % efficiency measured for two):"
        f" {model['chunk_wall_sec']} s per chunk, plus",
        f"{PER_CHUNK_OVERHEAD_SEC} s per chunk (invoke, inline audio) and {PER_REQUEST_OVERHEAD_SEC} s per request",
        f"(decode, VAD); a cold start adds ~{COLD_START_SEC:.0f} s. Locally the same plan runs on a pool of",
        f"{pool['workers']} threads (this machine's cores) standing in for the invocations.",
        "",
        "| what | figure |",
        "|---|---|",
        f"| per-chunk engine, 60 s of speech | {chunk['cpu_sec']} CPU-s, {chunk['wall_sec']} s wall"
        f" (load {chunk['load']}) |",
        f"| modelled 10-minute sync, warm | {model['warm_sec']} s |",
        f"| modelled 10-minute sync, cold | {model['cold_sec']} s (target ≤ {TARGET_SEC:.0f} s: {verdict}) |",
        f"| local pool, {pool['audio_sec']:.0f} s in {pool['chunks']} chunks, {pool['workers']} workers | "
        f"{pool['wall_sec']} s wall vs {pool['serial_sec']} s one at a time"
        f" ({pool['speedup']}x; load {pool['load']}) |",
        "",
        "Locally a 10-minute recording needs the same CPU time on 2 cores, so the sync route predicts it",
        "(`earshot/services/sync_budget.py`) and refuses it before any charge with `413 audio_too_long_for_sync`",
        "unless `EARSHOT_REQUEST_TIMEOUT_SEC` allows it; deployed, ten invocations share it.",
    ]


if __name__ == "__main__":
    print("\n".join(render(main())))
