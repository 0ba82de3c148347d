"""Handler overhead, cold imports and peak memory of the transcription Lambda handler.

Overhead = the whole ``lambda_handler`` call (event decode, multipart, validation, staging,
ffprobe metering, debit, rendering) with the engine swapped for one that returns at once, so the
figure excludes engine time by construction. Run: ``.venv/bin/python -m bench.handler``.
"""

from __future__ import annotations

import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
SIZES_MB = (1, 4, 25)
# What the deployed functions set (infra): no EMF output here, and no pydantic plugin scan at import.
LAMBDA_ENV = {
    "POWERTOOLS_METRICS_DISABLED": "true",
    "PYDANTIC_DISABLE_PLUGINS": "__all__",
    # glibc: serve multi-MB request buffers from the heap and keep it, instead of a fresh mmap (and page faults)
    # per buffer per request. The audio functions set the same (infra/capabilities/functions.py).
    "MALLOC_MMAP_THRESHOLD_": "33554432",
    "MALLOC_TRIM_THRESHOLD_": "134217728",
}


class InstantEngine:
    """Returns an empty transcript immediately: isolates the handler's own cost."""

    def check(self, options: Any) -> None:
        return None

    def transcribe(self, audio: Path, options: Any) -> Any:
        from earshot.engines.base import Transcript

        return Transcript(text="", language="en")


def _wav_of_size(path: Path, size_bytes: int) -> Path:
    """A 16 kHz mono 16-bit wav (silence) of about ``size_bytes``."""
    import wave

    frames = (size_bytes - 44) // 2
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x00" * frames)
    return path


def _event(audio: bytes, key_context: dict[str, str]) -> dict[str, Any]:
    from earshot.local.events import http_event

    boundary = "benchboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\ntranscribe\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + audio
        + f"\r\n--{boundary}--\r\n".encode()
    )
    event = http_event(
        method="POST",
        path="/v1/audio/transcriptions",
        route_key="POST /v1/audio/transcriptions",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        body=body,
    )
    event["requestContext"]["authorizer"] = {"lambda": key_context}
    return event


def _setup(data_dir: Path) -> tuple[Any, dict[str, str]]:
    os.environ.update(
        {
            "EARSHOT_DATA_DIR": str(data_dir),
            "EARSHOT_MAX_INLINE_BYTES": str(26 * MB),
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
    )
    from earshot.local.functions import load_handler
    from earshot.runtime import Runtime, get_runtime, reset_runtime
    from earshot.services.accounts import create_key

    reset_runtime()
    Runtime.transcription_engine = lambda self, model: InstantEngine()  # type: ignore[method-assign]
    new = create_key(get_runtime().store, name="bench", balance_micro_usd=10**12)
    return load_handler("transcriptions"), {"account_id": new.account.id, "key_id": new.key.id}


def _fresh_request_id(event: dict[str, Any], index: int) -> None:
    event["requestContext"]["requestId"] = f"bench-{time.time_ns()}-{index}"


def overhead() -> list[dict[str, Any]]:
    """Runs the measurement in a fresh interpreter with the deployed functions' environment."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.handler", "--overhead-child"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, **LAMBDA_ENV},
    )
    rows: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return rows


def _overhead_child(iterations: dict[int, int] | None = None) -> list[dict[str, Any]]:
    from earshot.local.events import LocalContext

    iterations = iterations or {1: 60, 4: 40, 25: 15}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        handler, context = _setup(Path(tmp) / "data")
        for size in SIZES_MB:
            audio = _wav_of_size(Path(tmp) / f"{size}.wav", size * MB).read_bytes()
            event = _event(audio, context)
            timings = []
            for index in range(iterations[size] + 3):
                _fresh_request_id(event, index)
                started = time.perf_counter()
                result = handler(event, LocalContext("transcriptions"))
                elapsed = (time.perf_counter() - started) * 1000
                assert result["statusCode"] == 200, result["body"]
                if index >= 3:  # warm-up
                    timings.append(elapsed)
            timings.sort()
            rows.append(
                {
                    "size_mb": size,
                    "n": len(timings),
                    "p50_ms": round(statistics.median(timings), 2),
                    "p99_ms": round(timings[min(len(timings) - 1, int(len(timings) * 0.99))], 2),
                }
            )
    return rows


def _peak_rss_child(size_mb: int) -> None:
    """Runs in a fresh interpreter: prints baseline and peak RSS (KiB) around one handler call."""
    from earshot.local.events import LocalContext

    with tempfile.TemporaryDirectory() as tmp:
        handler, context = _setup(Path(tmp) / "data")
        warm = _event(_wav_of_size(Path(tmp) / "warm.wav", 64 * 1024).read_bytes(), context)
        handler(warm, LocalContext("transcriptions"))
        event = _event(_wav_of_size(Path(tmp) / "a.wav", size_mb * MB).read_bytes(), context)
        gc.collect()
        # Reset the kernel's high-water mark so the peak is this call's, not building the event's.
        Path("/proc/self/clear_refs").write_text("5")
        baseline = _status_kib("VmRSS")
        result = handler(event, LocalContext("transcriptions"))
        peak = _status_kib("VmHWM")
        assert result["statusCode"] == 200
        print(json.dumps({"baseline_kib": baseline, "peak_kib": peak}))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_rss() -> list[dict[str, Any]]:
    rows = []
    for size in SIZES_MB:
        done = subprocess.run(
            [sys.executable, "-m", "bench.handler", "--rss-child", str(size)],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            # Without the malloc settings: with them, freed pages stay resident and the call's own peak
            # hides inside memory kept from building the event.
            env={**os.environ, **{k: v for k, v in LAMBDA_ENV.items() if not k.startswith("MALLOC_")}},
        )
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        above = (measured["peak_kib"] - measured["baseline_kib"]) / 1024
        rows.append(
            {
                "size_mb": size,
                "baseline_mb": round(measured["baseline_kib"] / 1024, 1),
                "peak_above_baseline_mb": round(above, 1),
                "ratio_to_upload": round(above / size, 2),
            }
        )
    return rows


def cold_imports(repeats: int = 9) -> list[dict[str, Any]]:
    """Cumulative import time of each function's handler module (``python -X importtime``), fresh interpreters.

    Bytecode is allowed and warmed by one unmeasured run, as in the deployed layers, which ship compiled bytecode.
    """
    from earshot.routes import functions

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | LAMBDA_ENV
    rows = []
    for name in functions():
        samples = []
        for attempt in range(repeats + 1):
            done = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", "import handler"],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO / "functions" / name,
                env=env,
            )
            last = [line for line in done.stderr.splitlines() if re.search(r"\|\s+handler$", line)][-1]
            if attempt:  # the first run writes the bytecode
                samples.append(int(last.split("|")[1]) / 1000)
        rows.append(
            {
                "function": name,
                "cold_import_ms": round(statistics.median(samples), 1),
                "best_ms": round(min(samples), 1),
            }
        )
    return rows


def main() -> dict[str, Any]:
    results = {"overhead": overhead(), "peak_rss": peak_rss(), "cold_imports": cold_imports()}
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--rss-child":
        _peak_rss_child(int(sys.argv[2]))
    elif len(sys.argv) == 2 and sys.argv[1] == "--overhead-child":
        print(json.dumps(_overhead_child()))
    else:
        main()
