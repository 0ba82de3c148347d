"""The "Peer" section of docs/benchmarks.md, written by `make bench-peer` (and kept by `make bench`)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
from pathlib import Path
from typing import Any

PEER_HEADING = "## Peer: Earshot vs the LiteLLM proxy"
PEER_END = "<!-- /bench:peer (generated above; notes below are kept) -->"
_TARGETS = {"p50": 0.5, "p95": None, "p99": 0.7, "cpu": None, "peak": 1.0}
_SMALL_THROUGHPUT_TARGET = 1.5


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}..{max(values):.2f})"


def _verdict(values: list[float], limit: float | None, *, at_least: bool = False) -> str:
    if limit is None:
        return ""
    worst = min(values) if at_least else max(values)
    ok = worst >= limit if at_least else worst <= limit
    return f" {'meets' if ok else 'MISSES'}"


def render(results: dict[str, Any], *, method: str) -> str:
    end = ", ".join(f"{x:.2f}" for x in results.get("load_end") or os.getloadavg())
    start = results.get("load_start")
    load = f"at the start: {', '.join(f'{x:.2f}' for x in start)}; at the end: {end}" if start else f"at the end: {end}"
    lines = [
        PEER_HEADING,
        "",
        f"Measured {dt.date.today().isoformat()} by `make bench-peer` on {os.cpu_count()} cores, Python"
        f" {platform.python_version()}, load average (1, 5, 15 min) {load} (a shared machine: read the spread).",
        "",
        method.strip(),
        "",
        "Each cell: Earshot / LiteLLM, median of the repetitions (min..max). Lower is better; targets: added",
        "latency ≤ 0.5x at p50 and ≤ 0.7x at p99, peak memory ≤ 1x; a verdict uses the worst repetition.",
        "",
        "| upload | mode | added p50 | added p95 | added p99 | CPU / request | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        ratios = row["ratios"]
        cells = [f"{_spread(ratios[key])}{_verdict(ratios[key], _TARGETS[key])}" for key in _TARGETS]
        lines.append(f"| {row['size_mib']} MiB | {row['mode']} | " + " | ".join(cells) + " |")
    lines += ["", "Absolute figures (medians over repetitions; added latency in ms, CPU in ms, peak RSS in MiB):", ""]
    lines += ["| upload | mode | Earshot p50 / p99 | LiteLLM p50 / p99 | Earshot CPU | LiteLLM CPU | Earshot peak |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for row in results["rows"]:
        a = {key: statistics.median(values) for key, values in row["absolute"].items()}
        lines.append(
            f"| {row['size_mib']} MiB | {row['mode']} | {a['earshot_p50_ms']:.1f} / {a['earshot_p99_ms']:.1f}"
            f" | {a['litellm_p50_ms']:.1f} / {a['litellm_p99_ms']:.1f} | {a['earshot_cpu_ms']:.1f}"
            f" | {a['litellm_cpu_ms']:.1f} | {a['earshot_peak_mb']:.1f} (LiteLLM {a['litellm_peak_mb']:.1f}) |"
        )
    throughput = results["throughput"]
    lines += [
        "",
        f"Small files (100 KiB) at concurrency 8, requests per second, Earshot / LiteLLM: {_spread(throughput)}"
        f" (target ≥ {_SMALL_THROUGHPUT_TARGET}x:{_verdict(throughput, _SMALL_THROUGHPUT_TARGET, at_least=True)}).",
        "",
    ]
    return "\n".join(lines)


def write(results: dict[str, Any], *, method: str, path: Path) -> str:
    """Replace (or append) the generated peer section of ``path``: from its heading to ``PEER_END`` (or, in a file
    written before that marker, to the next section), keeping everything after it (hand-written notes, the ASR
    section)."""
    section = render(results, method=method) + "\n" + PEER_END + "\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if PEER_HEADING not in text:
        path.write_text(text.rstrip("\n") + "\n\n" + section)
        return section
    start = text.index(PEER_HEADING)
    if PEER_END in text[start:]:
        end = text.index(PEER_END, start) + len(PEER_END)
    else:
        ends = [i for m in ("\n## ", "\n<!-- bench:") if (i := text.find(m, start + len(PEER_HEADING))) >= 0]
        end = min(ends, default=len(text))
    rest = text[end:].lstrip("\n")
    path.write_text(text[:start] + section + ("\n" + rest if rest else ""))
    return section
