"""Long audio as a task, through the workflow's Map state in the local runner (the steps Step Functions invokes, the
chunks on a pool of threads standing in for concurrent inference invocations).

Two runs, each a task of the catalog's ``transcribe`` model on the embedded engine, in a fresh local data dir:

- **one hour** of digital silence carrying real read speech (Debian pocketsphinx-testdata's LibriVox clips) at six
  known places: the workflow decodes the hour once, finds the speech with Silero VAD, runs only the chunks that hold
  it, merges them onto the hour's timeline and bills 60 minutes once;
- **ten minutes of continuous speech** (the clips end to end, 0.6 s apart): every chunk runs, two at a time.

`python -m bench.task_fanout` prints its section; `make bench` puts it in docs/benchmarks.md.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
RATE = 16_000
GAP_SEC = 0.6


def _clips() -> list[np.ndarray]:
    clips = []
    for path in sorted(LIBRIVOX.glob("*.wav")):
        with wave.open(str(path)) as handle:
            clips.append(np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16))
    if not clips:
        raise SystemExit("pocketsphinx-testdata is not installed: run `make setup`")
    return clips


def _speech_run(seconds: float) -> np.ndarray:
    """``seconds`` of the clips end to end, ``GAP_SEC`` apart."""
    gap = np.zeros(int(GAP_SEC * RATE), dtype=np.int16)
    pieces: list[np.ndarray] = []
    total = 0
    while total < seconds * RATE:
        for clip in _clips():
            pieces += [clip, gap]
            total += len(clip) + len(gap)
    return np.concatenate(pieces)[: int(seconds * RATE)]


def _write(path: Path, pcm: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return path


def _hour(path: Path, places: list[float], run_sec: float) -> list[tuple[float, float]]:
    pcm = np.zeros(3600 * RATE, dtype=np.int16)
    speech = _speech_run(run_sec)
    spans = []
    for start in places:
        at = int(start * RATE)
        pcm[at : at + len(speech)] = speech
        spans.append((start, start + run_sec))
    _write(path, pcm)
    return spans


def run_task(audio: Path, *, workers: int) -> dict[str, Any]:
    """``audio`` as a transcription task through the local runner, in a fresh data dir; what it took and billed."""
    from earshot.blob_layout import task_input_key
    from earshot.jobs.steps import registry
    from earshot.ports import new_task
    from earshot.runtime import get_runtime, reset_runtime
    from earshot.services.accounts import create_key
    from earshot.workflow import CHUNK_STEP, LocalRunner

    with tempfile.TemporaryDirectory(prefix="earshot-bench-task-") as data:
        os.environ.update(EARSHOT_DATA_DIR=data, EARSHOT_RUNTIME="local", POWERTOOLS_METRICS_DISABLED="true")
        reset_runtime()
        runtime = get_runtime()
        key = create_key(runtime.store, name="bench", balance_micro_usd=100_000_000)
        task = new_task(kind="transcription", account_id=key.account.id, model="transcribe", request={})
        blob = task_input_key(task.id)
        request = {
            "options": {"model": "transcribe", "response_format": "verbose_json"},
            "filename": audio.name,
            "source": {"blob_key": blob, "delete_after": True},
        }
        runtime.tasks.create_task(task.model_copy(update={"request": request}))
        runtime.blobs.put(blob, audio.read_bytes())
        runtime.transcription_engine(runtime.catalog.resolve_transcription("transcribe"))
        started, cpu = time.perf_counter(), time.process_time()
        result = LocalRunner(registry(runtime), map_workers=workers).run({"task_id": task.id})
        wall, cpu_sec = time.perf_counter() - started, time.process_time() - cpu
        done = runtime.tasks.get_task(task.id)
        assert done is not None
        debits = [e.amount_micro_usd for e in runtime.store.list_ledger(key.account.id) if e.kind == "debit"]
        body = done.results[0] if done.results else {}
        reset_runtime()
    return {
        "status": done.status,
        "error": done.error,
        "chunks": len(result.state.get("chunks") or []),
        "chunk_runs": sum(1 for attempt in result.history if attempt.step == CHUNK_STEP),
        "wall_sec": round(wall, 1),
        "cpu_sec": round(cpu_sec, 1),
        "debits": debits,
        "billed_minutes": (body.get("billing") or {}).get("billable_minutes"),
        "segments": [(s["start"], s["end"]) for s in body.get("segments", [])],
        "words": len(str(body.get("text", "")).split()),
        "sku": body.get("model"),
        "workers": workers,
        "load": round(os.getloadavg()[0], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> dict[str, Any]:
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="earshot-bench-audio-") as tmp:
        places = [60.0 * m for m in (1, 11, 23, 35, 47, 58)]
        spans = _hour(Path(tmp) / "hour.wav", places, 30.0)
        hour = run_task(Path(tmp) / "hour.wav", workers=workers)
        on_time = all(any(a - 1.0 <= start <= b for a, b in spans) for start, _ in hour["segments"])
        hour.update(spans=len(spans), on_time=on_time)
        ten = run_task(_write(Path(tmp) / "ten.wav", _speech_run(600.0)), workers=workers)
    return {"hour": hour, "ten": ten}


def render(results: dict[str, Any]) -> list[str]:
    hour, ten = results["hour"], results["ten"]
    return [
        "",
        "## Long audio as a task: the workflow's Map state in the local runner",
        "",
        "Method: `bench/task_fanout.py`. A transcription task of the catalog's `transcribe` engine"
        f" ({hour['sku']}) runs through",
        "`LocalRunner` with the workflow's own steps: `plan_chunks` (decode once, Silero VAD, cut at silences into",
        "chunk blobs), the Map state's `run_chunk` per chunk on a pool of"
        f" {hour['workers']} threads, `merge_chunks`, store, settle.",
        "The one-hour file is digital silence carrying 30 s of real read speech (LibriVox) at six known places; the",
        "ten-minute file is that speech end to end. Wall and CPU time of the whole task, this process.",
        "",
        "| task | chunks run | wall s | CPU s | debits | billed minutes | status |",
        "|---|---|---|---|---|---|---|",
        f"| 1 hour, speech at {hour['spans']} places | {hour['chunk_runs']} of {hour['chunks']} planned |"
        f" {hour['wall_sec']} | {hour['cpu_sec']} | {len(hour['debits'])} | {hour['billed_minutes']} |"
        f" {hour['status']} (segments on the hour's timeline: {'yes' if hour['on_time'] else 'NO'}) |",
        f"| 10 minutes of speech | {ten['chunk_runs']} of {ten['chunks']} planned | {ten['wall_sec']} |"
        f" {ten['cpu_sec']} | {len(ten['debits'])} | {ten['billed_minutes']} | {ten['status']}"
        f" ({ten['words']} words) |",
        "",
        f"Load average at the end: {ten['load']}; peak RSS {ten['peak_rss_mb']} MB.",
    ]


if __name__ == "__main__":
    print("\n".join(render(main())))
