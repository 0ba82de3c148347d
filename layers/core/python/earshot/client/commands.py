"""``earshot transcribe|understand|extract|tasks|usage``: the API from a terminal, against any base URL.

Configuration: ``--base-url``/``EARSHOT_BASE_URL`` (default the local server) and ``--api-key``/
``EARSHOT_API_KEY``. Files above the inline limit go through ``/v1/uploads`` with an upload progress bar;
tasks are followed live with a progress bar; results print to stdout or go to ``--output``. Any API error
prints the envelope's message and exits 1.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earshot.client.api import DEFAULT_BASE_URL, DEFAULT_INLINE_LIMIT, Client, ClientError

if TYPE_CHECKING:
    from tqdm import tqdm

FORMATS = ("text", "json", "verbose_json", "srt", "vtt", "diarized_json")


def register(commands: Any) -> None:
    """Add the client commands to ``earshot``'s subcommands."""

    def client_options(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--base-url", default=os.environ.get("EARSHOT_BASE_URL", DEFAULT_BASE_URL))
        sub.add_argument("--api-key", default=os.environ.get("EARSHOT_API_KEY"), help="default: $EARSHOT_API_KEY")
        sub.add_argument(
            "--inline-limit-mb",
            type=float,
            default=float(os.environ.get("EARSHOT_INLINE_LIMIT_MB", DEFAULT_INLINE_LIMIT / 1024 / 1024)),
            help="files larger than this go through /v1/uploads (default 25, the server's default)",
        )
        sub.add_argument("-o", "--output", type=Path, help="write the result to this file instead of stdout")
        sub.add_argument("--quiet", action="store_true", help="no progress bars")
        return sub

    transcribe = client_options(commands.add_parser("transcribe", help="transcribe a file (client)"))
    transcribe.add_argument("file", type=Path)
    transcribe.add_argument("--model", default=None)
    transcribe.add_argument("--language", default=None)
    transcribe.add_argument("--format", choices=FORMATS, default="text")
    transcribe.add_argument("--translate", action="store_true", help="translate into English")
    transcribe.add_argument("--async", dest="run_async", action="store_true", help="run as a task and follow it")
    transcribe.add_argument("--stream", action="store_true", help="print the text as it is decoded")
    transcribe.set_defaults(func=_run(cmd_transcribe))

    understand = client_options(commands.add_parser("understand", help="ask a question about a file (client)"))
    understand.add_argument("file", type=Path)
    understand.add_argument("--question", "-q", required=True)
    understand.add_argument("--model", default=None)
    understand.add_argument("--json", action="store_true", help="print the whole JSON answer")
    understand.set_defaults(func=_run(cmd_understand))

    extract = client_options(commands.add_parser("extract", help="extract data from a file (client)"))
    extract.add_argument("file", type=Path)
    extract.add_argument("--prompt", "-p", required=True)
    extract.add_argument("--schema", type=Path, help="a JSON Schema file the result must satisfy")
    extract.add_argument("--model", default=None)
    extract.add_argument("--json", action="store_true", help="print the whole JSON answer")
    extract.set_defaults(func=_run(cmd_extract))

    tasks = commands.add_parser("tasks", help="look at and follow tasks (client)")
    task_commands = tasks.add_subparsers(dest="tasks_command", required=True)
    get = client_options(task_commands.add_parser("get", help="print a task"))
    get.add_argument("task_id")
    get.set_defaults(func=_run(cmd_tasks_get))
    follow = client_options(task_commands.add_parser("follow", help="follow a task live, then print its result"))
    follow.add_argument("task_id")
    follow.add_argument("--json", action="store_true", help="print the whole task at the end")
    follow.set_defaults(func=_run(cmd_tasks_follow))
    delete = client_options(task_commands.add_parser("delete", help="delete a task, its audio and result"))
    delete.add_argument("task_id")
    delete.set_defaults(func=_run(cmd_tasks_delete))

    usage = client_options(commands.add_parser("usage", help="balance and recent charges (client)"))
    usage.add_argument("--limit", type=int, default=20)
    usage.add_argument("--json", action="store_true")
    usage.set_defaults(func=_run(cmd_usage))


def _run(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        if not args.api_key:
            print("earshot: no API key: set EARSHOT_API_KEY or pass --api-key", file=sys.stderr)
            return 2
        client = Client(args.base_url, args.api_key)
        try:
            code: int = command(client, args)
            return code
        except ClientError as error:
            print(f"earshot: {error.message}", file=sys.stderr)
            return 1
        except OSError as error:
            print(f"earshot: {error}", file=sys.stderr)
            return 1
        finally:
            client.close()

    return run


# -- commands ------------------------------------------------------------------------------------------------
def cmd_transcribe(client: Client, args: argparse.Namespace) -> int:
    path: Path = args.file
    size = path.stat().st_size
    kind = "translation" if args.translate else "transcription"
    options: dict[str, Any] = {"response_format": args.format}
    if args.language:
        options["language"] = args.language
    if args.model:
        options["model"] = args.model
    if size > _inline_limit(args):
        task_id = _upload_and_process(client, args, kind, options)
        return _follow_and_write(client, args, task_id)
    route = "/v1/audio/translations" if args.translate else "/v1/audio/transcriptions"
    if args.stream:
        return _stream_transcription(client, args, route, options)
    with path.open("rb") as handle:
        files = {"file": (path.name, handle)}
        data = {**options, **({"async": "true"} if args.run_async else {})}
        response = client.request("POST", route, files=files, data=data)
    if args.run_async:
        return _follow_and_write(client, args, response.json()["id"])
    _write(args, response.text if args.format in ("text", "srt", "vtt") else _pretty(response.json()))
    return 0


def cmd_understand(client: Client, args: argparse.Namespace) -> int:
    path: Path = args.file
    data: dict[str, Any] = {"question": args.question}
    if args.model:
        data["model"] = args.model
    if path.stat().st_size > _inline_limit(args):
        data["file_id"] = _upload_only(client, args)
        response = client.request("POST", "/v1/audio/understand", data=data)
    else:
        with path.open("rb") as handle:
            response = client.request("POST", "/v1/audio/understand", files={"file": (path.name, handle)}, data=data)
    answer = response.json()
    _write(args, _pretty(answer) if args.json else str(answer.get("answer", "")))
    return 0


def cmd_extract(client: Client, args: argparse.Namespace) -> int:
    path: Path = args.file
    body: dict[str, Any] = {"prompt": args.prompt}
    if args.model:
        body["model"] = args.model
    if args.schema:
        body["schema"] = json.loads(args.schema.read_text())
    if path.stat().st_size > _inline_limit(args) * 3 / 4:  # base64 grows the body by a third
        body.update(inputMethod="file_id", audio=_upload_only(client, args))
    else:
        body.update(inputMethod="base64", audio=base64.b64encode(path.read_bytes()).decode())
    answer = client.request("POST", "/api/v1/extract-audio", json=body).json()
    results = answer.get("results")
    _write(args, _pretty(answer) if args.json else (results if isinstance(results, str) else _pretty(results)))
    return 0


def cmd_tasks_get(client: Client, args: argparse.Namespace) -> int:
    _write(args, _pretty(client.get_json(f"/v1/tasks/{args.task_id}")))
    return 0


def cmd_tasks_follow(client: Client, args: argparse.Namespace) -> int:
    return _follow_and_write(client, args, args.task_id)


def cmd_tasks_delete(client: Client, args: argparse.Namespace) -> int:
    _write(args, _pretty(client.request("DELETE", f"/v1/tasks/{args.task_id}").json()))
    return 0


def cmd_usage(client: Client, args: argparse.Namespace) -> int:
    balance = client.get_json("/v1/credits/balance")
    usage = client.get_json("/v1/usage", params={"limit": args.limit})
    if args.json:
        _write(args, _pretty({"balance": balance, "usage": usage}))
        return 0
    lines = [f"balance: ${balance['balance_usd']}", ""]
    lines.append(f"{'when (UTC)':<20} {'kind':<7} {'model':<22} {'seconds':>8} {'USD':>10} {'balance':>10}")
    import time as _time

    for entry in usage["data"]:
        when = _time.strftime("%Y-%m-%d %H:%M:%S", _time.gmtime(entry["created_at"]))
        seconds = "" if entry.get("duration_sec") is None else f"{entry['duration_sec']:.1f}"
        lines.append(
            f"{when:<20} {entry['kind']:<7} {(entry.get('model') or '')[:22]:<22} {seconds:>8}"
            f" {entry['amount_usd']:>10} {entry['balance_after_usd']:>10}"
        )
    _write(args, "\n".join(lines))
    return 0


# -- helpers -------------------------------------------------------------------------------------------------
def _inline_limit(args: argparse.Namespace) -> int:
    return int(args.inline_limit_mb * 1024 * 1024)


def _upload_bar(args: argparse.Namespace, path: Path) -> tqdm[Any]:
    from tqdm import tqdm  # the client's own dependency (pip install 'earshot[client]')

    return tqdm(
        total=path.stat().st_size,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"uploading {path.name}",
        disable=args.quiet,
        file=sys.stderr,
    )


def _upload_and_process(client: Client, args: argparse.Namespace, kind: str, options: dict[str, Any]) -> str:
    model = options.pop("model", None)
    process: dict[str, Any] = {"kind": kind, "options": options}
    if model:
        process["model"] = model
    with _upload_bar(args, args.file) as bar:
        upload = client.upload(args.file, process=process, on_progress=bar.update)
    return str(upload["task_id"])


def _upload_only(client: Client, args: argparse.Namespace) -> str:
    with _upload_bar(args, args.file) as bar:
        upload = client.upload(args.file, on_progress=bar.update)
    return str(upload["id"])


def _follow_and_write(client: Client, args: argparse.Namespace, task_id: str) -> int:
    client.wait_for_task(task_id)
    from tqdm import tqdm

    task: dict[str, Any] = {}
    with tqdm(total=100, desc=task_id, unit="%", disable=args.quiet, file=sys.stderr) as bar:
        for event in client.follow(task_id):
            data = event.data if isinstance(event.data, dict) else {}
            if isinstance(data.get("progress"), int):
                bar.update(max(0, data["progress"] - bar.n))
            if event.type == "partial" and not args.quiet:
                bar.write(f"  … {data.get('segment', {}).get('text', '')}", file=sys.stderr)
            if event.type == "done":
                task = data
    if task.get("status") != "completed":
        error = task.get("error") or {}
        raise ClientError(f"task {task_id} {task.get('status', 'ended')}: {error.get('message', 'no result')}")
    if getattr(args, "json", False):
        _write(args, _pretty(task))
        return 0
    result = (task.get("results") or [None])[0]
    _write(args, result if isinstance(result, str) else _pretty(result))
    return 0


def _stream_transcription(client: Client, args: argparse.Namespace, route: str, options: dict[str, Any]) -> int:
    from earshot.client.api import parse_sse, raise_for_envelope

    if args.format not in ("text", "json"):
        raise ClientError("--stream prints text: use --format text or json")
    text = ""
    with (
        args.file.open("rb") as handle,
        client._http.stream(
            "POST", route, files={"file": (args.file.name, handle)}, data={**options, "stream": "true"}
        ) as response,
    ):
        if response.status_code >= 400:
            response.read()
            raise_for_envelope(response)
        for event in parse_sse(response.iter_lines()):
            data = event.data if isinstance(event.data, dict) else {}
            if data.get("type") == "transcript.text.delta" and args.output is None:
                print(data["delta"], end="", flush=True)
            elif data.get("type") == "transcript.text.done":
                text = str(data.get("text", ""))
            elif data.get("type") == "error":
                raise ClientError(str((data.get("error") or {}).get("message", "the stream failed")))
    if args.output is not None:
        _write(args, text)
    else:
        print()
    return 0


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _write(args: argparse.Namespace, text: str) -> None:
    if args.output is not None:
        args.output.write_text(text if text.endswith("\n") else text + "\n")
        if not args.quiet:
            print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(text.rstrip("\n"))
