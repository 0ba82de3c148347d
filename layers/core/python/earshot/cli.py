"""``earshot``: run the local API, manage keys, invoke a handler with a sample event."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from earshot.billing import micro_from_usd_text, usd_text
from earshot.errors import EarshotError


def _use_data_dir(data_dir: str | None) -> None:
    """Point the runtime at ``data_dir`` (flag > EARSHOT_DATA_DIR > .earshot) before building it."""
    if data_dir:
        os.environ["EARSHOT_DATA_DIR"] = data_dir
    from earshot.runtime import reset_runtime

    reset_runtime()


def _store() -> Any:
    from earshot.runtime import get_runtime

    return get_runtime().store


def _usd_arg(text: str) -> int:
    try:
        micro = micro_from_usd_text(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if micro < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return micro


def _key_row(key: Any, account: Any) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "hint": key.hint,
        "account_id": account.id,
        "balance_usd": usd_text(account.balance_micro_usd),
        "balance_micro_usd": account.balance_micro_usd,
        "audio_enabled": account.audio_enabled,
        "revoked": key.revoked,
    }


def cmd_serve(args: argparse.Namespace) -> int:
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # no EMF blobs on a developer's terminal
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "earshot")
    _use_data_dir(args.data_dir)
    from earshot.local.server import bound_malloc_arenas, build_server

    bound_malloc_arenas()  # before any thread allocates
    from earshot.runtime import get_runtime
    from earshot.services.accounts import create_key

    runtime = get_runtime()
    _recover_after_restart(runtime)
    store = runtime.store
    if not store.list_api_keys():
        new = create_key(store, name="development", balance_micro_usd=10_000_000)
        print(f"Created a development key with $10.00 (id {new.key.id}). It is shown only once:", flush=True)
        print(f"  export EARSHOT_API_KEY={new.secret}", flush=True)
    server = build_server(
        args.host,
        args.port,
        max_request_bytes=runtime.settings.max_inline_bytes,
        timeout_sec=runtime.settings.request_timeout_sec,
    )
    if runtime.settings.public_base_url is None:
        # Links the server hands out point at where it listens, unless EARSHOT_PUBLIC_BASE_URL says otherwise
        # (behind a reverse proxy); never at whatever Host header a request carries.
        from earshot.config import reset_settings

        reachable = "127.0.0.1" if args.host in ("", "0.0.0.0", "::") else args.host
        reachable = f"[{reachable}]" if ":" in reachable else reachable
        os.environ["EARSHOT_PUBLIC_BASE_URL"] = f"http://{reachable}:{server.server_port}"
        reset_settings()
    print(
        f"Earshot listening on http://{args.host}:{server.server_port} (data: {runtime.settings.data_dir})", flush=True
    )
    # SIGTERM (docker stop, systemd, a process manager) stops like Ctrl-C: no new connections, and
    # server_close() waits for the requests in flight to be answered.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _recover_after_restart(runtime: Any) -> None:
    """Nothing from before this process can still be running: release its holds, end its tasks, free its keys."""
    import time

    from earshot.adapters.sqlite_tasks import SqliteIdempotencyStore
    from earshot.services.recovery import recover

    recovered = recover(runtime, request_older_than_sec=0, task_older_than_sec=0, now=int(time.time()) + 1)
    if isinstance(runtime.idempotency, SqliteIdempotencyStore):
        runtime.idempotency.release_all_in_progress()
    if recovered.refunded or recovered.failed_tasks or recovered.captured:
        print(
            f"Recovered from an earlier stop: {len(recovered.refunded)} charge(s) refunded,"
            f" {len(recovered.failed_tasks)} unfinished task(s) failed, {len(recovered.captured)} charge(s) settled",
            flush=True,
        )


def cmd_keys_create(args: argparse.Namespace) -> int:
    _use_data_dir(args.data_dir)
    from earshot.services.accounts import create_key

    new = create_key(_store(), name=args.name, balance_micro_usd=args.balance_usd)
    if args.json:
        print(json.dumps({**_key_row(new.key, new.account), "key": new.secret}))
    else:
        print(f"id: {new.key.id}\naccount: {new.account.id}\nbalance_usd: {usd_text(new.account.balance_micro_usd)}")
        print("key (shown once):")
        print(new.secret)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    _use_data_dir(args.data_dir)
    store = _store()
    rows = []
    for key in store.list_api_keys():
        account = store.get_account(key.account_id)
        rows.append(_key_row(key, account))
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            state = "revoked" if row["revoked"] else ("audio-disabled" if not row["audio_enabled"] else "active")
            print(f"{row['id']}  {row['hint']}  ${row['balance_usd']}  {state}  {row['name']}")
    return 0


def cmd_keys_topup(args: argparse.Namespace) -> int:
    _use_data_dir(args.data_dir)
    from earshot.services.accounts import top_up_key

    if args.usd <= 0:
        raise SystemExit("earshot: --usd must be positive")
    entry = top_up_key(_store(), args.id, args.usd)
    print(f"{args.id}: +${usd_text(entry.amount_micro_usd)}, balance ${usd_text(entry.balance_after_micro_usd)}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    _use_data_dir(args.data_dir)
    key = _store().revoke_api_key(args.id)
    print(f"{key.id}: revoked")
    return 0


def _set_audio(args: argparse.Namespace, enabled: bool) -> int:
    _use_data_dir(args.data_dir)
    from earshot.services.accounts import key_account

    store = _store()
    key, account = key_account(store, args.id)
    store.set_audio_enabled(account.id, enabled)
    print(f"{key.id}: audio {'enabled' if enabled else 'disabled'}")
    return 0


def cmd_keys_webhook_secret(args: argparse.Namespace) -> int:
    """Print the account's webhook signing secret, creating it on first use or with ``--rotate``."""
    _use_data_dir(args.data_dir)
    from earshot.errors import NotFoundError
    from earshot.webhooks import generate_secret

    store = _store()
    key = store.get_api_key(args.id)
    account = store.get_account(key.account_id if key else args.id)
    if account is None:
        raise NotFoundError(f"no API key or account {args.id}")
    secret = None if args.rotate else store.get_webhook_secret(account.id)
    if secret is None:
        secret = generate_secret()
        store.set_webhook_secret(account.id, secret)
    print(secret)
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    _use_data_dir(args.data_dir)
    from earshot.local.events import LocalContext
    from earshot.local.functions import load_handler

    event = json.loads(Path(args.event).read_text())
    result = load_handler(args.function)(event, LocalContext(args.function))
    print(json.dumps(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="earshot", description="Earshot audio API: local server, operator tools and a client."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def with_data_dir(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--data-dir", default=None, help="data directory (default: $EARSHOT_DATA_DIR or .earshot)")
        return sub

    serve = with_data_dir(commands.add_parser("serve", help="run the local API"))
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    serve.set_defaults(func=cmd_serve)

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = with_data_dir(keys.add_parser("create", help="create an account and its API key"))
    create.add_argument("--name", required=True)
    create.add_argument("--balance-usd", type=_usd_arg, default=0, help="opening balance in USD, e.g. 5 or 0.0009")
    create.add_argument("--json", action="store_true", help="print one JSON object with id and key")
    create.set_defaults(func=cmd_keys_create)
    listing = with_data_dir(keys.add_parser("list", help="list keys (never their secrets)"))
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_keys_list)
    topup = with_data_dir(keys.add_parser("topup", help="add money to a key's account"))
    topup.add_argument("id")
    topup.add_argument("--usd", type=_usd_arg, required=True)
    topup.set_defaults(func=cmd_keys_topup)
    revoke = with_data_dir(keys.add_parser("revoke", help="revoke a key"))
    revoke.add_argument("id")
    revoke.set_defaults(func=cmd_keys_revoke)
    disable = with_data_dir(keys.add_parser("disable-audio", help="turn audio routes off for a key's account"))
    disable.add_argument("id")
    disable.set_defaults(func=lambda a: _set_audio(a, False))
    enable = with_data_dir(keys.add_parser("enable-audio", help="turn audio routes back on"))
    enable.add_argument("id")
    enable.set_defaults(func=lambda a: _set_audio(a, True))

    webhook_secret = with_data_dir(
        keys.add_parser("webhook-secret", help="print the secret that signs a key's account's webhooks")
    )
    webhook_secret.add_argument("id", help="a key id (or account id)")
    webhook_secret.add_argument("--rotate", action="store_true", help="replace the secret with a new one")
    webhook_secret.set_defaults(func=cmd_keys_webhook_secret)

    invoke = with_data_dir(commands.add_parser("invoke", help="run one function's handler with an event file"))
    invoke.add_argument("function", help="a directory under functions/, e.g. transcriptions")
    invoke.add_argument("event", help="an event JSON file, e.g. events/models-list.json")
    invoke.set_defaults(func=cmd_invoke)
    from earshot.client.commands import register

    register(commands)  # transcribe, understand, extract, tasks, usage: the API's client
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except EarshotError as exc:
        print(f"earshot: {exc.message}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
