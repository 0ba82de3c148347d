"""`make bench-peer`: Earshot's local server against the LiteLLM proxy, both in front of one fake upstream.

Method
------
* One fake OpenAI upstream (``bench.peer_upstream``) on 127.0.0.1 answers ``/v1/audio/transcriptions`` with
  ``json`` text only, so both proxies must meter the audio themselves. It disables Nagle, as production servers do
  (its head-then-body answer otherwise waits 40 ms for a delayed ACK on every reused connection).
* Earshot: ``earshot serve`` with a catalog whose ``whisper-1`` is an openai-transcription SKU on that upstream.
  LiteLLM 1.110.2: ``litellm --config`` from its own venv (``.venv-peer``), ``LITELLM_LOCAL_MODEL_COST_MAP=True``,
  no database, the same model on the same upstream.
* The client (this process, httpx, one pooled client per target) sends the same mp3 (1, 4 and 20 MiB) to the
  upstream directly and through each proxy, interleaved round by round (the order rotates each round), sequential
  and at concurrency 8. Added latency = a proxy's latency minus the direct call's in the same round.
* CPU: each server process's utime+stime (from /proc) over a phase, per request. Peak memory: the process's
  resident high-water mark during the phase (VmHWM, reset with /proc/PID/clear_refs at the phase's start).
* Every figure is reported as Earshot / LiteLLM, with the spread across repetitions (min..max of the per-repetition
  ratios). Small-file throughput: 100 KiB requests at concurrency 8, requests per second, ratio (each repetition
  runs both back to back, which goes first alternating).
* ``python -m bench.peer --help``: a subset (``--sizes 20 --modes sequential --no-write``) for profiling.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
PEER_PYTHON = REPO / ".venv-peer" / "bin" / "python"
MIB = 1024 * 1024
SIZES_MIB = (1, 4, 20)
CONCURRENCY = 8
TARGETS = ("direct", "earshot", "litellm")


def _audio(size: int, directory: Path) -> bytes:
    """An mp3 of about ``size`` bytes (128 kbit/s noise), encoded once with PyAV."""
    sys.path.insert(0, str(REPO / "tests"))
    from audio_fixtures import write_audio

    seconds = size * 8 / 128_000
    path = write_audio(directory / f"{size}.mp3", fmt="mp3", seconds=seconds, kind="noise", sample_rate=44100)
    data: bytes = path.read_bytes()
    return data


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    headers: dict[str, str] = field(default_factory=dict)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset_peak(self) -> int:
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")
        return self._status("VmRSS")

    def peak(self) -> int:
        return self._status("VmHWM")

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _start_upstream() -> Server:
    process = subprocess.Popen([sys.executable, "-m", "bench.peer_upstream", "0"], stdout=subprocess.PIPE, cwd=REPO)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return Server("direct", process, f"http://127.0.0.1:{port}/v1")


def _start_earshot(upstream: str, directory: Path, *, name: str = "earshot", code: Path | None = None) -> Server:
    """``earshot serve`` on the fake upstream; ``code``: another checkout's ``layers/core/python`` to run instead."""
    directory = directory / name
    directory.mkdir(parents=True, exist_ok=True)
    catalog = directory / "catalog.toml"
    catalog.write_text(
        '[[models]]\nsku = "whisper-1"\nkind = "transcription"\nprovider = "openai-transcription"\n'
        f'upstream_model = "whisper-1"\nbase_url = "{upstream}"\ncredential = "env:BENCH_UPSTREAM_KEY"\n'
        'price_micro_usd_per_minute = 900\naliases = ["transcribe"]\n'
    )
    port = _free_port()
    env = {
        **os.environ,
        "EARSHOT_CATALOG": str(catalog),
        "BENCH_UPSTREAM_KEY": "sk-bench",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "EARSHOT_RATE_LIMIT_PER_MINUTE": "1000000",
    }
    if code is not None:
        env["PYTHONPATH"] = str(code)
    log = (directory / "earshot.log").open("wb")
    process = subprocess.Popen(
        [
            str(REPO / ".venv/bin/python"),
            "-m",
            "earshot.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(directory / "data"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=REPO,
    )
    _wait(f"http://127.0.0.1:{port}/v1/models")
    key = json.loads(
        subprocess.run(
            [
                *(str(REPO / ".venv/bin/earshot"), "keys", "create", "--name", "bench"),
                *("--balance-usd", "100000", "--json", "--data-dir", str(directory / "data")),
            ],
            capture_output=True,
            check=True,
            env=env,
        ).stdout
    )["key"]
    return Server(name, process, f"http://127.0.0.1:{port}/v1", {"Authorization": f"Bearer {key}"})


def _start_litellm(upstream: str, directory: Path) -> Server:
    config = directory / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: whisper-1\n    litellm_params:\n      model: openai/whisper-1\n"
        f"      api_base: {upstream}\n      api_key: sk-bench\n    model_info:\n      mode: audio_transcription\n"
    )
    port = _free_port()
    master = "sk-" + os.urandom(32).hex()  # no database: the master key is the one key, checked per request
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_MASTER_KEY": master,
        "LITELLM_LOG": "ERROR",
        "PYTHONWARNINGS": "ignore",
    }
    env.pop("DATABASE_URL", None)
    log = (directory / "litellm.log").open("wb")
    process = subprocess.Popen(
        [str(PEER_PYTHON), "-m", "litellm.proxy.proxy_cli", "--config", str(config), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=directory,
    )
    _wait(f"http://127.0.0.1:{port}/health/liveliness", timeout=240)
    return Server("litellm", process, f"http://127.0.0.1:{port}/v1", {"Authorization": f"Bearer {master}"})


def _send(client: httpx.Client, server: Server, audio: bytes) -> float:
    started = time.perf_counter()
    response = client.post(
        f"{server.url}/audio/transcriptions",
        headers=server.headers,
        files={"file": ("audio.mp3", audio, "audio/mpeg")},
        data={"model": "whisper-1", "response_format": "json"},
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{server.name}: {response.status_code} {response.text[:300]}")
    return elapsed


def _sender(client: httpx.Client, server: Server, audio: bytes) -> Callable[[int], float]:
    return lambda _: _send(client, server, audio)


@dataclass
class Phase:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {t: [] for t in TARGETS})
    cpu: dict[str, float] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    requests: int = 0


def _run_phase(servers: dict[str, Server], audio: bytes, *, rounds: int, concurrency: int) -> Phase:
    phase = Phase()
    clients = {name: httpx.Client(timeout=120, limits=httpx.Limits(max_connections=concurrency)) for name in servers}
    cpu_before = {n: s.cpu_seconds() for n, s in servers.items() if n != "direct"}
    for name, server in servers.items():
        if name != "direct":
            server.reset_peak()
    order = list(TARGETS)
    with ThreadPoolExecutor(concurrency) as pool:
        for index in range(rounds):
            rotated = order[index % 3 :] + order[: index % 3]
            for name in rotated:
                batch = list(pool.map(_sender(clients[name], servers[name], audio), range(concurrency)))
                phase.latencies[name].extend(batch)
    phase.requests = rounds * concurrency
    for name in cpu_before:
        phase.cpu[name] = (servers[name].cpu_seconds() - cpu_before[name]) / phase.requests
        phase.peak[name] = servers[name].peak()
    for client in clients.values():
        client.close()
    return phase


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _added(phase: Phase, name: str, q: float) -> float:
    return max(1e-6, _pct(phase.latencies[name], q) - _pct(phase.latencies["direct"], q))


def _throughput(servers: dict[str, Server], audio: bytes, *, requests: int, first: str) -> dict[str, float]:
    rates = {}
    for name in (first, "litellm" if first == "earshot" else "earshot"):
        client = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=CONCURRENCY))
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            started = time.perf_counter()
            list(pool.map(_sender(client, servers[name], audio), range(requests)))
            rates[name] = requests / (time.perf_counter() - started)
        client.close()
    return rates


def main(
    repetitions: int = 3,
    rounds_seq: int = 12,
    rounds_conc: int = 4,
    *,
    sizes: tuple[int, ...] = SIZES_MIB,
    modes: tuple[str, ...] = ("sequential", "concurrency 8"),
    small_requests: int = 96,
) -> dict[str, Any]:
    if not PEER_PYTHON.exists():
        raise SystemExit("run `make bench-peer` (it installs LiteLLM into .venv-peer first)")
    load_start = os.getloadavg()
    directory = Path(tempfile.mkdtemp(prefix="earshot-peer-"))
    upstream = _start_upstream()
    servers = {"direct": upstream}
    try:
        servers["earshot"] = _start_earshot(upstream.url, directory)
        servers["litellm"] = _start_litellm(upstream.url, directory)
        files = {size: _audio(size * MIB, directory) for size in sizes}
        small = _audio(100 * 1024, directory)
        for name in ("earshot", "litellm"):  # warm both (imports, pools, caches)
            client = httpx.Client(timeout=120)
            for _ in range(3):
                _send(client, servers[name], files[min(sizes)])
            client.close()
        rows: list[dict[str, Any]] = []
        for size in sizes:
            for mode, concurrency, rounds in (
                ("sequential", 1, rounds_seq),
                ("concurrency 8", CONCURRENCY, rounds_conc),
            ):
                if mode not in modes:
                    continue
                ratios: dict[str, list[float]] = {k: [] for k in ("p50", "p95", "p99", "cpu", "peak")}
                absolute: dict[str, list[float]] = {}
                for _ in range(repetitions):
                    phase = _run_phase(servers, files[size], rounds=rounds, concurrency=concurrency)
                    for key, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
                        ratios[key].append(_added(phase, "earshot", q) / _added(phase, "litellm", q))
                        for name in ("earshot", "litellm"):
                            absolute.setdefault(f"{name}_{key}_ms", []).append(_added(phase, name, q) * 1000)
                    ratios["cpu"].append(phase.cpu["earshot"] / max(1e-9, phase.cpu["litellm"]))
                    ratios["peak"].append(phase.peak["earshot"] / max(1, phase.peak["litellm"]))
                    for name in ("earshot", "litellm"):
                        absolute.setdefault(f"{name}_cpu_ms", []).append(phase.cpu[name] * 1000)
                        absolute.setdefault(f"{name}_peak_mb", []).append(phase.peak[name] / MIB)
                rows.append({"size_mib": size, "mode": mode, "ratios": ratios, "absolute": absolute})
                _print_row(rows[-1])
        # Each repetition runs both back to back, the first alternating (the machine's load drifts).
        rates = [
            _throughput(servers, small, requests=small_requests, first=("earshot", "litellm")[index % 2])
            for index in range(repetitions)
        ]
        throughput = [r["earshot"] / r["litellm"] for r in rates]
        print(f"small-file (100 KiB) throughput at concurrency 8, Earshot / LiteLLM: {_spread(throughput)}")
        return {
            "rows": rows,
            "throughput": throughput,
            "rates": rates,
            "load_start": list(load_start),
            "load_end": list(os.getloadavg()),
        }
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}..{max(values):.2f})"


def _print_row(row: dict[str, Any]) -> None:
    ratios = row["ratios"]
    cells = "  ".join(f"{key} {_spread(values)}" for key, values in ratios.items())
    print(f"{row['size_mib']:>2} MiB {row['mode']:<14} Earshot/LiteLLM: {cells}", flush=True)
    absolute = row["absolute"]
    detail = "  ".join(f"{key} {statistics.median(values):.1f}" for key, values in sorted(absolute.items()))
    print(f"{'':21}{detail}", flush=True)


def _arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peer",
        description="Earshot vs the LiteLLM proxy on one fake upstream (`make bench-peer` runs it with the defaults "
        "and rewrites the Peer section of docs/benchmarks.md).",
    )
    parser.add_argument("--sizes", default=",".join(map(str, SIZES_MIB)), help="upload sizes in MiB (default 1,4,20)")
    parser.add_argument("--modes", choices=("both", "sequential", "concurrent"), default="both")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--rounds-seq", type=int, default=12, help="rounds per sequential phase")
    parser.add_argument("--rounds-conc", type=int, default=4, help="rounds (of 8 requests each) per concurrent phase")
    parser.add_argument("--small-requests", type=int, default=96, help="100 KiB requests per throughput repetition")
    parser.add_argument("--no-write", action="store_true", help="print only: leave docs/benchmarks.md alone")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _arguments()
    chosen = {"both": ("sequential", "concurrency 8"), "sequential": ("sequential",), "concurrent": ("concurrency 8",)}
    results = main(
        args.repetitions,
        args.rounds_seq,
        args.rounds_conc,
        sizes=tuple(int(size) for size in args.sizes.split(",")),
        modes=chosen[args.modes],
        small_requests=args.small_requests,
    )
    out = Path(os.environ.get("BENCH_PEER_JSON", REPO / "build" / "bench-peer.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    if not args.no_write:
        from bench.peer_report import write

        method = __doc__.split("Method\n------\n", 1)[1] if __doc__ else ""
        print(write(results, method="Method:\n\n" + method, path=REPO / "docs" / "benchmarks.md"))
