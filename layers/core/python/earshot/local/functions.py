"""Loads ``functions/<name>/handler.py:lambda_handler`` exactly as Lambda would run it (``adapters.local_lambda``)."""

from __future__ import annotations

from earshot.adapters.local_lambda import Handler, functions_dir, load_handler

__all__ = ["Handler", "functions_dir", "load_handler"]
