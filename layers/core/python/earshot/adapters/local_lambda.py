"""Lambda, emulated locally: ``functions/<name>/handler.py:lambda_handler`` loaded exactly as Lambda loads it,
and the context object it is called with. The local server runs routes through it, and the local job starter
runs the workflow's steps through it, as API Gateway and Step Functions invoke the deployed functions.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

_REPO_FUNCTIONS = Path(__file__).resolve().parents[5] / "functions"
_lock = threading.Lock()
# Each thread's loaded handlers: a thread is one execution environment (see load_handler).
_environments = threading.local()


def functions_dir() -> Path:
    return Path(os.environ.get("EARSHOT_FUNCTIONS_DIR", str(_REPO_FUNCTIONS)))


def load_handler(name: str) -> Handler:
    """``functions/<name>/handler.py:lambda_handler``, loaded once per calling thread.

    Lambda runs one invocation at a time in an execution environment and gives concurrent invocations environments
    of their own, each with its own module globals; handlers rely on that (a Powertools resolver keeps the event and
    context it is resolving on itself). The local server's worker threads each get their own copy of the module, as
    concurrent invocations get their own environment: one module shared by threads let a request read another's
    event and body mid-flight (1 in ~1,000 uploads at concurrency 8 was refused as an incomplete form).
    """
    loaded: dict[str, Handler] | None = getattr(_environments, "handlers", None)
    if loaded is None:
        loaded = _environments.handlers = {}
    handler = loaded.get(name)
    if handler is None:
        path = functions_dir() / name / "handler.py"
        if not path.is_file():
            raise LookupError(f"no function {name!r} at {path}")
        with _lock:  # its imports run one at a time (an import shared with another thread is not half-done)
            spec = importlib.util.spec_from_file_location(f"earshot_functions.{name}.handler", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        handler = loaded[name] = module.lambda_handler
    return handler


@dataclass
class LocalContext:
    """The attributes of a Lambda context object that Powertools and Earshot read."""

    function_name: str
    timeout_sec: float = 30.0
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)
    response_streaming: bool = False  # the local gateway writes StreamBody answers as they are produced
    request_body: Any = None  # the local gateway's body reader, when the body is not in the event (http.request)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:local:000000000000:function:{self.function_name}"

    @property
    def function_version(self) -> str:
        return "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_sec - (time.monotonic() - self.started)) * 1000))
