"""Requests in flight together are each answered from their own request: `python -m bench.concurrency`.

`earshot serve` on the peer benchmark's fake upstream (which answers `json` with text only, so Earshot meters every
upload itself), eight clients at once, each sending valid uploads of a different length over keep-alive
connections. Every answer must be a 200 whose billed duration is its own file's: a request served from another's
event (the Powertools resolver state that 143ed02 moved off its shared class) shows as a refusal or as another
file's duration. Prints the outcomes and exits 1 on any wrong answer. A correctness stress, not a timing: it takes
a few minutes and is not part of `make bench`.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.peer import _audio, _start_earshot, _start_upstream

SIZES = (20 * 1024, 64 * 1024, 100 * 1024, 200 * 1024, 255 * 1024, 300 * 1024)  # both sides of the streamed path
PER_CONNECTION = 5


def main(requests: int, concurrency: int) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from audio_fixtures import decoded_duration

    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        audios = {size: _audio(size, directory) for size in SIZES}
        durations = {size: round(decoded_duration(directory / f"{size}.mp3"), 3) for size in SIZES}
        upstream = _start_upstream()
        earshot = _start_earshot(upstream.url, directory)
        outcomes: collections.Counter[str] = collections.Counter()
        wrong: list[str] = []

        def connection(index: int) -> None:
            size = SIZES[index % len(SIZES)]
            with httpx.Client(timeout=60) as client:
                for _ in range(PER_CONNECTION):
                    response = client.post(
                        f"{earshot.url}/audio/transcriptions",
                        headers=earshot.headers,
                        files={"file": ("audio.mp3", audios[size], "audio/mpeg")},
                        data={"model": "whisper-1", "response_format": "json"},
                    )
                    billed = response.json().get("billing", {}).get("duration_sec") if response.is_success else None
                    if response.status_code == 200 and billed is not None and abs(billed - durations[size]) < 0.01:
                        outcomes["200, its own duration"] += 1
                    else:
                        outcomes[f"{response.status_code} (billed {billed})"] += 1
                        wrong.append(f"{size} B: {response.status_code} {response.text[:160]}")

        try:
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(connection, range(max(1, requests // PER_CONNECTION))))
        finally:
            earshot.stop()
            upstream.stop()
    print(f"{sum(outcomes.values())} uploads at concurrency {concurrency}: {dict(outcomes)}")
    for line in wrong[:20]:
        print("  wrong:", line)
    return 1 if wrong else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=7500)
    parser.add_argument("--concurrency", type=int, default=8)
    arguments = parser.parse_args()
    sys.exit(main(arguments.requests, arguments.concurrency))
