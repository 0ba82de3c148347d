"""The server killed (SIGKILL) at random instants under mixed sync + async load, then restarted."""

from __future__ import annotations

from pathlib import Path

from bench.crash_recovery import run


def test_a_killed_server_strands_no_money_and_leaves_no_task_unfinished(tmp_path: Path) -> None:
    figures = run(2, clients=3, seed=8, data_dir=tmp_path / "data")  # raises naming any broken invariant

    assert figures["debits"] == figures["refunded"] + figures["captured"]
    assert figures["idempotent_requests"] == 2
