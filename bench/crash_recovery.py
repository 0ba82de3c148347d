"""Money survives a crash: ``earshot serve`` killed (SIGKILL) at random instants under mixed load, then restarted.

Each round starts the server on one data dir, sends a mix of sync transcriptions, async transcriptions
and sync transcriptions under an ``Idempotency-Key`` from several threads, and kills the server after a
random 1-5 s. After the last round the server is started once more (start-up recovery runs), every
idempotent request is retried once with its key, and every task is waited for. Then the SQLite file is
checked directly:

- every account's balance equals the sum of its ledger, and none is negative;
- no hold is left open: every debit was captured (its work delivered) or refunded;
- every debit a client saw answered (200, or a completed task) was captured, not refunded;
- no task is left ``pending`` or ``processing``;
- each idempotent request has its own account, and was charged once in total (never twice).

Run: ``.venv/bin/python -m bench.crash_recovery [rounds]``. ``tests/e2e/test_crash_recovery.py`` runs two rounds.
"""

from __future__ import annotations

import random
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODEL = "whisper-base"


@dataclass
class Observed:
    """What clients saw answered: sync request ids with a 200, task ids accepted, idempotent keys per account."""

    delivered_requests: set[str] = field(default_factory=set)
    tasks: set[str] = field(default_factory=set)
    idempotent: dict[str, tuple[str, str]] = field(default_factory=dict)  # api key -> (idempotency key, account)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _client_load(url: str, key: str, wav: bytes, observed: Observed, stop: threading.Event, rng: random.Random) -> None:
    import httpx

    files = {"file": ("a.wav", wav, "audio/wav")}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        while not stop.is_set():
            asynchronous = rng.random() < 0.4
            data = {"model": MODEL, "response_format": "json", **({"async": "true"} if asynchronous else {})}
            try:
                response = client.post("/v1/audio/transcriptions", data=data, files=files)
            except httpx.HTTPError:
                return  # the server died
            with observed.lock:
                if response.status_code == 200:
                    observed.delivered_requests.add(response.headers.get("x-request-id", ""))
                elif response.status_code == 202:
                    observed.tasks.add(response.json()["id"])


def _idempotent_request(url: str, key: str, idempotency_key: str, wav: bytes, observed: Observed) -> int:
    import httpx

    try:
        response = httpx.post(
            f"{url}/v1/audio/transcriptions",
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key},
            data={"model": MODEL, "response_format": "json"},
            files={"file": ("a.wav", wav, "audio/wav")},
            timeout=30,
        )
    except httpx.HTTPError:
        return 0
    if response.status_code == 200 and response.headers.get("idempotent-replayed") != "true":
        with observed.lock:
            observed.delivered_requests.add(response.headers.get("x-request-id", ""))
    return response.status_code


def _wait_for_tasks(url: str, key: str, task_ids: set[str], timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    for task_id in task_ids:
        while time.monotonic() < deadline:
            status = httpx.get(
                f"{url}/v1/tasks/{task_id}", params={"wait": 5}, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ).json()["status"]
            if status in ("completed", "failed"):
                break


def check(database: Path, observed: Observed, price_micro_usd: int) -> dict[str, Any]:
    """The invariants, read from the SQLite file; raises AssertionError naming the first that fails."""
    db = sqlite3.connect(database)
    problems: list[str] = []
    for account_id, balance, ledger_sum in db.execute(
        "SELECT a.id, a.balance_micro_usd, COALESCE(SUM(l.amount_micro_usd), 0) FROM accounts a"
        " LEFT JOIN ledger l ON l.account_id = a.id GROUP BY a.id"
    ):
        if balance != ledger_sum or balance < 0:
            problems.append(f"account {account_id}: balance {balance} != ledger {ledger_sum}")
    open_holds = [row[0] for row in db.execute("SELECT request_id FROM open_holds")]
    if open_holds:
        problems.append(f"{len(open_holds)} hold(s) left open: {open_holds[:5]}")
    debits = {row[0] for row in db.execute("SELECT request_id FROM ledger WHERE kind = 'debit'")}
    refunds = {row[0] for row in db.execute("SELECT request_id FROM ledger WHERE kind = 'refund'")}
    statuses = dict(db.execute("SELECT id, status FROM tasks"))
    unfinished = [task_id for task_id, status in statuses.items() if status not in ("completed", "failed")]
    if unfinished:
        problems.append(f"{len(unfinished)} task(s) unfinished: {unfinished[:5]}")
    seen = observed.delivered_requests | {t for t in observed.tasks if statuses.get(t) == "completed"}
    refunded_but_delivered = sorted((seen & debits) & refunds)
    if refunded_but_delivered:
        problems.append(f"delivered work refunded: {refunded_but_delivered[:5]}")
    completed_refunded = [t for t, status in statuses.items() if status == "completed" and t in refunds]
    if completed_refunded:
        problems.append(f"completed tasks refunded: {completed_refunded[:5]}")
    double_charged = []
    for _api_key, (_idem, account_id) in observed.idempotent.items():
        (net,) = db.execute(
            "SELECT -COALESCE(SUM(amount_micro_usd), 0) FROM ledger"
            " WHERE account_id = ? AND kind IN ('debit', 'refund')",
            (account_id,),
        ).fetchone()
        if net > price_micro_usd:
            double_charged.append(account_id)
    if double_charged:
        problems.append(f"idempotent requests charged more than once: {double_charged}")
    figures = {
        "debits": len(debits),
        "refunded": len(debits & refunds),
        "captured": len(debits - refunds),
        "captured_and_seen_by_a_client": len((debits - refunds) & seen),
        "captured_but_answer_lost_in_the_kill": len((debits - refunds) - seen),
        "tasks": len(statuses),
        "tasks_failed": sum(1 for s in statuses.values() if s == "failed"),
        "idempotent_requests": len(observed.idempotent),
    }
    if problems:
        raise AssertionError("; ".join(problems) + f" ({figures})")
    return figures


def run(rounds: int = 5, *, clients: int = 4, seed: int | None = None, data_dir: Path | None = None) -> dict[str, Any]:
    """``rounds`` kill rounds, a final restart, then ``check``; returns the figures."""
    sys.path[:0] = [str(REPO / "tests")]
    from audio_fixtures import audio_bytes
    from local_server import start_server

    rng = random.Random(seed)
    wav = audio_bytes("wav", 1.5, sample_rate=16000)
    scratch = tempfile.TemporaryDirectory() if data_dir is None else None
    directory = data_dir or Path(scratch.name if scratch else ".") / "data"
    observed = Observed()
    server = start_server(directory)
    main_key = server.create_key(balance_usd="50")
    server.process.kill()
    server.process.wait()
    for round_number in range(rounds):
        server = start_server(directory)
        idem_key = server.create_key_record(balance_usd="1", name=f"idem-{round_number}")
        observed.idempotent[str(idem_key["key"])] = (f"crash-{round_number}", str(idem_key["account_id"]))
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=_client_load, args=(server.url, main_key, wav, observed, stop, random.Random(rng.random()))
            )
            for _ in range(clients)
        ]
        threads.append(
            threading.Thread(
                target=_idempotent_request,
                args=(server.url, str(idem_key["key"]), f"crash-{round_number}", wav, observed),
            )
        )
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(1.0, 5.0))
        server.process.kill()  # SIGKILL: no shutdown, no cleanup
        server.process.wait()
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    server = start_server(directory)  # recovery runs before it listens
    try:
        for api_key, (idempotency_key, _account) in observed.idempotent.items():
            _idempotent_request(server.url, api_key, idempotency_key, wav, observed)
        _wait_for_tasks(server.url, main_key, set(observed.tasks))
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    price = _price(directory / "earshot.db")
    figures = check(directory / "earshot.db", observed, price)
    figures["rounds"] = rounds
    if scratch is not None:
        scratch.cleanup()
    return figures


def _price(database: Path) -> int:
    row = sqlite3.connect(database).execute("SELECT MAX(-amount_micro_usd) FROM ledger WHERE kind = 'debit'").fetchone()
    return int(row[0] or 0)


if __name__ == "__main__":
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
