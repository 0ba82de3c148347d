"""Loads ``functions/<name>/handler.py:lambda_handler`` exactly as Lambda would run it."""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

_REPO_FUNCTIONS = Path(__file__).resolve().parents[5] / "functions"
_lock = threading.Lock()
_loaded: dict[str, Handler] = {}


def functions_dir() -> Path:
    return Path(os.environ.get("EARSHOT_FUNCTIONS_DIR", str(_REPO_FUNCTIONS)))


def load_handler(name: str) -> Handler:
    with _lock:
        if name not in _loaded:
            path = functions_dir() / name / "handler.py"
            if not path.is_file():
                raise LookupError(f"no function {name!r} at {path}")
            spec = importlib.util.spec_from_file_location(f"earshot_functions.{name}.handler", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _loaded[name] = module.lambda_handler
        return _loaded[name]
