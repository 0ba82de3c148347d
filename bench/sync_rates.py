"""The engine rates the sync budget predicts with (``earshot.services.sync_budget.ENGINE_SEC_PER_AUDIO_SEC``):
CPU seconds per second of audio of every embedded SKU in the default catalog, on 60 s of real read speech.

Method: the SKU's engine as the runtime builds it (the recogniser itself, not the runtime's fan-out), warmed on 5 s,
then one timed call on 60 s of LibriVox clips 0.6 s apart; process CPU time (user + system, all threads) divided by
the audio's length. CPU time, not wall: it is what a dedicated 2-vCPU inference function spends, and it is steady on
a shared machine where wall time is not. The sync budget divides by the chunks that run at once, not by threads.

`python -m bench.sync_rates` prints its section.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.task_fanout import _speech_run, _write

AUDIO_SEC = 60.0


def rates() -> list[dict[str, Any]]:
    from earshot.runtime import get_runtime
    from earshot.services.sync_budget import engine_rate

    runtime = get_runtime()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="earshot-bench-rates-") as tmp:
        speech = _speech_run(AUDIO_SEC)
        audio = _write(Path(tmp) / "speech.wav", speech)
        warm = _write(Path(tmp) / "warm.wav", speech[: 5 * 16_000])
        for model in runtime.catalog.models:
            if not model.provider.startswith("embedded:"):
                continue
            call = _caller(runtime, model)
            call(warm)
            started, cpu = time.perf_counter(), time.process_time()
            call(audio)
            wall, used = time.perf_counter() - started, time.process_time() - cpu
            rows.append(
                {
                    "sku": model.sku,
                    "provider": model.provider,
                    "cpu_sec": round(used, 2),
                    "wall_sec": round(wall, 2),
                    "rate": round(used / AUDIO_SEC, 3),
                    "budgeted": engine_rate(model),
                    "load": round(os.getloadavg()[0], 2),
                }
            )
    return rows


def _caller(runtime: Any, model: Any) -> Callable[[Path], Any]:
    """One call of ``model``'s engine on a file: a transcription (English), or a question about the audio."""
    from earshot.engines.base import TranscriptionOptions

    if model.kind == "transcription":
        engine = runtime.transcription_engine(model)
        recogniser = getattr(engine, "_inner", engine)  # the recogniser itself, not the runtime's fan-out
        return lambda path: recogniser.transcribe(path, TranscriptionOptions(language="en"))
    asker = runtime.question_engine(model)
    return lambda path: asker.ask(path, "What do you hear?", deadline_sec=600.0)


def render(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "## Engine rates for the sync budget",
        "",
        "Method: `bench/sync_rates.py`. Every embedded SKU of the default catalog, warm, on 60 s of real read speech",
        "(LibriVox); CPU seconds (all threads) per second of audio. `services/sync_budget.py` predicts with the",
        "budgeted rate (x 1.25 for a busy machine) and refuses a sync request it cannot finish before any charge.",
        "",
        "| SKU | provider | CPU s / 60 s | wall s (load) | measured rate | budgeted rate |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['sku']} | {r['provider']} | {r['cpu_sec']} | {r['wall_sec']} ({r['load']}) | {r['rate']} |"
        f" {r['budgeted']} |"
        for r in rows
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(render(rates())))
