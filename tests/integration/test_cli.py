"""The operator's `earshot keys ...` commands against a real SQLite data dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from earshot.keys import is_well_formed
from earshot.webhooks import signed_headers, verify


def earshot(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "earshot.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=check,
    )


def test_keys_lifecycle(tmp_path: Path) -> None:
    created = json.loads(
        earshot(tmp_path, "keys", "create", "--name", "alice", "--balance-usd", "2.5", "--json").stdout
    )
    assert is_well_formed(created["key"])
    assert created["balance_micro_usd"] == 2_500_000

    plain = earshot(tmp_path, "keys", "create", "--name", "bob", "--balance-usd", "0.0009").stdout
    assert is_well_formed(plain.strip().splitlines()[-1])

    listed = json.loads(earshot(tmp_path, "keys", "list", "--json").stdout)
    assert [row["name"] for row in listed] == ["alice", "bob"]
    assert all("key" not in row and row["hint"].startswith("sk-es-...") for row in listed)

    earshot(tmp_path, "keys", "topup", created["id"], "--usd", "1.25")
    earshot(tmp_path, "keys", "disable-audio", created["id"])
    earshot(tmp_path, "keys", "revoke", created["id"])
    alice = json.loads(earshot(tmp_path, "keys", "list", "--json").stdout)[0]
    assert alice["balance_micro_usd"] == 3_750_000
    assert alice["audio_enabled"] is False
    assert alice["revoked"] is True
    # the secret is never written anywhere in the data dir
    assert all(created["key"].encode() not in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "topup", "key_missing", "--usd", "1"),
        ("keys", "revoke", "key_missing"),
        ("keys", "disable-audio", "key_missing"),
    ],
)
def test_unknown_key_ids_fail_cleanly(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = earshot(tmp_path, *args, check=False)
    assert done.returncode == 1
    assert "no API key" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("amount", ["-1", "abc", "0.0000001"])
def test_bad_amounts_are_usage_errors(tmp_path: Path, amount: str) -> None:
    done = earshot(tmp_path, "keys", "create", "--name", "x", "--balance-usd", amount, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_webhook_secret_is_created_once_kept_and_rotated(tmp_path: Path) -> None:
    alice = json.loads(earshot(tmp_path, "keys", "create", "--name", "alice", "--json").stdout)
    bob = json.loads(earshot(tmp_path, "keys", "create", "--name", "bob", "--json").stdout)

    first = earshot(tmp_path, "keys", "webhook-secret", alice["id"]).stdout.strip()
    again = earshot(tmp_path, "keys", "webhook-secret", alice["id"]).stdout.strip()
    by_account = earshot(tmp_path, "keys", "webhook-secret", alice["account_id"]).stdout.strip()
    rotated = earshot(tmp_path, "keys", "webhook-secret", alice["id"], "--rotate").stdout.strip()
    bobs = earshot(tmp_path, "keys", "webhook-secret", bob["id"]).stdout.strip()

    assert first.startswith("whsec_")
    body = b'{"id":"task-llm-1-abcdefgh"}'  # a secret the Standard Webhooks signer and verifier accept
    verify(first, signed_headers(first, "msg_1", 1_700_000_000, body), body, now=1_700_000_000)
    assert again == by_account == first
    assert rotated.startswith("whsec_") and rotated != first
    assert earshot(tmp_path, "keys", "webhook-secret", alice["id"]).stdout.strip() == rotated
    assert bobs not in (first, rotated)


def test_webhook_secret_of_an_unknown_id_fails_cleanly(tmp_path: Path) -> None:
    done = earshot(tmp_path, "keys", "webhook-secret", "key_missing", check=False)
    assert done.returncode == 1
    assert "no API key" in done.stderr and "Traceback" not in done.stderr
