"""The embedded analyzer's speed: a minute of 44.1 kHz stereo music, analysed end to end.

Target: under a tenth of real time (6 s for the minute) on the reference machine. This used to be a
wall-clock assertion in the integration suite, where a loaded machine failed it; timing belongs here.
One warm-up run, then N timed runs. Run: ``.venv/bin/python -m bench.analyzer``.
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
ITERATIONS = 5
TARGET_REAL_TIME_FACTOR = 0.1


def main(iterations: int = ITERATIONS) -> dict[str, Any]:
    """Analyse the minute ``iterations`` times; print and return the median and best wall time."""
    import numpy as np

    sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "integration")]  # the analyzer tests' signals
    from test_analyzer import chords_and_beat, write_wav

    from earshot.engines.analyzer import analyze_audio

    with tempfile.TemporaryDirectory() as scratch:
        music = chords_and_beat(SECONDS, rate=44_100)
        path = write_wav(Path(scratch) / "minute.wav", [music, np.roll(music, 441)], rate=44_100)
        analyze_audio(path)
        timings = []
        for _ in range(iterations):
            started = time.perf_counter()
            analyze_audio(path)
            timings.append(time.perf_counter() - started)
    result = {
        "seconds_of_audio": SECONDS,
        "median_sec": round(statistics.median(timings), 3),
        "best_sec": round(min(timings), 3),
        "real_time_factor": round(statistics.median(timings) / SECONDS, 4),
        "target_real_time_factor": TARGET_REAL_TIME_FACTOR,
    }
    print(result)
    return result


if __name__ == "__main__":
    main()
