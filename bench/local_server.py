"""The local server's HTTP layer: werkzeug (as it was, from a git ref) against waitress (this checkout).

Method: both run ``earshot serve`` on one fake upstream (``bench.peer_upstream``, as ``make bench-peer``), same
catalog, same client (httpx, one pooled client per server, keep-alive where the server allows it). Phases are
interleaved round by round: 100 KiB uploads at concurrency 8 (throughput, requests per second) and 4 MiB uploads
at concurrency 8 (p50 latency, peak RSS). Reported as waitress / werkzeug with the spread over rounds.

    .venv/bin/python -m bench.local_server [GIT_REF [MIB]]   # GIT_REF: the werkzeug version (default 2f4f16f);
                                                             # MIB: the large upload (default 4)
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.peer import CONCURRENCY, MIB, REPO, Server, _audio, _send, _start_earshot, _start_upstream


def _checkout(ref: str, directory: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", ref, "layers/core/python", "functions"], cwd=REPO, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True)
    ffprobe = directory / "layers/ffprobe/bin/ffprobe"  # not in git: the same binary as this checkout's
    ffprobe.parent.mkdir(parents=True, exist_ok=True)
    ffprobe.symlink_to(REPO / "layers/ffprobe/bin/ffprobe")
    return directory / "layers/core/python"


def _batch(server: Server, audio: bytes, requests: int) -> tuple[float, list[float]]:
    client = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=CONCURRENCY))
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        started = time.perf_counter()
        latencies = list(pool.map(lambda _: _send(client, server, audio), range(requests)))
        elapsed = time.perf_counter() - started
    client.close()
    return requests / elapsed, latencies


def main(ref: str = "2f4f16f", rounds: int = 5, large_mib: int = 4) -> None:
    directory = Path(tempfile.mkdtemp(prefix="earshot-serve-bench-"))
    upstream = _start_upstream()
    servers: dict[str, Server] = {}
    try:
        old = _checkout(ref, directory)
        servers["werkzeug"] = _start_earshot(upstream.url, directory, name="werkzeug", code=old)
        servers["waitress"] = _start_earshot(upstream.url, directory, name="waitress")
        small, large = _audio(100 * 1024, directory), _audio(large_mib * MIB, directory)
        for server in servers.values():
            _batch(server, small, 16)  # warm
        rates: dict[str, list[float]] = {n: [] for n in servers}
        p50: dict[str, list[float]] = {n: [] for n in servers}
        peak: dict[str, list[float]] = {n: [] for n in servers}
        for index in range(rounds):
            order = list(servers) if index % 2 == 0 else list(reversed(servers))
            for name in order:
                rates[name].append(_batch(servers[name], small, 64)[0])
                servers[name].reset_peak()
                latencies = _batch(servers[name], large, 8)[1]
                p50[name].append(statistics.median(latencies) * 1000)
                peak[name].append(servers[name].peak() / MIB)
        for label, values, unit in (
            ("100 KiB rps", rates, ""),
            ("4 MiB p50 ms", p50, ""),
            ("4 MiB peak MiB", peak, ""),
        ):
            ratio = [a / b for a, b in zip(values["waitress"], values["werkzeug"], strict=True)]
            print(
                f"{label:>15}: werkzeug {statistics.median(values['werkzeug']):.1f}  "
                f"waitress {statistics.median(values['waitress']):.1f}{unit}  "
                f"waitress/werkzeug {statistics.median(ratio):.2f} ({min(ratio):.2f}..{max(ratio):.2f})",
                flush=True,
            )
    finally:
        for server in [*servers.values(), upstream]:
            server.stop()
        if "--keep" not in sys.argv:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "2f4f16f", large_mib=int(sys.argv[2]) if len(sys.argv) > 2 else 4)
