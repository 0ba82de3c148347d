"""ffprobe metering cost per format: one 60-s file each, ``meter_duration`` timed end to end.

Each call covers the ffprobe process start, the probe, JSON parsing and, where the format needs it,
packet counting. One warm-up call per file, then N timed calls. Run: ``.venv/bin/python -m bench.metering``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SECONDS = 60.0
ITERATIONS = 50


def main(iterations: int = ITERATIONS) -> list[dict[str, Any]]:
    """Meter one 60-s file per fixture format; print and return p50/p99 wall time per format."""
    sys.path.insert(0, str(REPO / "tests"))  # the shared audio fixture generator
    from audio_fixtures import FORMATS, decoded_duration, write_audio

    from earshot.config import get_settings
    from earshot.metering import meter_duration

    ffprobe = get_settings().resolved_ffprobe()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:
            path = write_audio(Path(tmp) / fmt, fmt=fmt, seconds=SECONDS, kind="tone")
            metered = meter_duration(path, ffprobe=ffprobe)  # warm-up: page cache, binary
            timings = []
            for _ in range(iterations):
                started = time.perf_counter()
                meter_duration(path, ffprobe=ffprobe)
                timings.append((time.perf_counter() - started) * 1000)
            timings.sort()
            rows.append(
                {
                    "format": fmt,
                    "source": metered.source,
                    "n": len(timings),
                    "p50_ms": round(statistics.median(timings), 2),
                    "p99_ms": round(timings[min(len(timings) - 1, int(len(timings) * 0.99))], 2),
                    "error_ms": round((metered.seconds - decoded_duration(path)) * 1000, 3),
                }
            )
    print(f"{'format':<16} {'source':<9} {'n':>3} {'p50 ms':>7} {'p99 ms':>7} {'metered-decoded ms':>19}")
    for row in rows:
        print(
            f"{row['format']:<16} {row['source']:<9} {row['n']:>3} {row['p50_ms']:>7} {row['p99_ms']:>7}"
            f" {row['error_ms']:>19}"
        )
    return rows


if __name__ == "__main__":
    main()
