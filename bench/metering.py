"""Metering cost per format and length, against ``cat`` of the same file measured in the same run.

Each ``meter_duration`` call covers the ffprobe process start, the probe, JSON parsing and the frame walk (or
ffprobe's packet count where the format is not walked). ``cat FILE > /dev/null`` (a process start plus reading
the file) is timed alternately with it, so the ratio is taken under the same machine load. One warm-up call per
file, then N timed pairs. Run: ``.venv/bin/python -m bench.metering``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LENGTHS = (60.0, 1200.0)  # a minute, and a 20-minute file (about 20 MiB of 128 kbit/s mp3)
ITERATIONS = 20


def main(iterations: int = ITERATIONS) -> list[dict[str, Any]]:
    """Meter one 60-s file per fixture format; print and return p50/p99 wall time per format."""
    sys.path.insert(0, str(REPO / "tests"))  # the shared audio fixture generator
    from audio_fixtures import FORMATS, decoded_duration, write_audio

    from earshot.config import get_settings
    from earshot.metering import meter_duration

    ffprobe = get_settings().resolved_ffprobe()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in LENGTHS:
            for fmt in FORMATS:
                if seconds > 60 and fmt.endswith("_video"):
                    continue  # video fixtures take minutes to encode at length; the audio formats carry the point
                path = write_audio(Path(tmp) / f"{fmt}-{seconds:.0f}", fmt=fmt, seconds=seconds, kind="tone")
                metered = meter_duration(path, ffprobe=ffprobe)  # warm-up: page cache, binary
                timings, cats = [], []
                for _ in range(iterations):
                    started = time.perf_counter()
                    meter_duration(path, ffprobe=ffprobe)
                    timings.append((time.perf_counter() - started) * 1000)
                    started = time.perf_counter()
                    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
                    cats.append((time.perf_counter() - started) * 1000)
                timings.sort()
                p50, cat = statistics.median(timings), statistics.median(cats)
                rows.append(
                    {
                        "format": fmt,
                        "seconds": seconds,
                        "mib": round(path.stat().st_size / 2**20, 1),
                        "source": metered.source,
                        "n": len(timings),
                        "p50_ms": round(p50, 2),
                        "p99_ms": round(timings[min(len(timings) - 1, int(len(timings) * 0.99))], 2),
                        "cat_p50_ms": round(cat, 2),
                        "x_cat": round(p50 / cat, 2),
                        "error_ms": round((metered.seconds - decoded_duration(path)) * 1000, 3),
                    }
                )
                _print(rows[-1])
    return rows


def _print(row: dict[str, Any]) -> None:
    print(
        f"{row['format']:<16} {row['seconds']:>6.0f}s {row['mib']:>6} MiB {row['source']:<8} p50 {row['p50_ms']:>7} ms"
        f"  cat {row['cat_p50_ms']:>6} ms  x{row['x_cat']:<5}  metered-decoded {row['error_ms']} ms",
        flush=True,
    )


if __name__ == "__main__":
    main()
