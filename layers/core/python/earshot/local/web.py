"""The browser pages of local mode: the console at ``/`` and the API reference at ``/docs``.

Both are static files under the repository's ``web/`` (``EARSHOT_WEB_DIR`` elsewhere): ``web/console``
(the console, deployable as-is to any static host), ``web/docs`` (Swagger UI reading ``/openapi.json``)
and ``web/vendor`` (pinned npm packages vendored by ``make setup``; never fetched from a CDN).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from werkzeug.middleware.shared_data import SharedDataMiddleware

_REPO_WEB = Path(__file__).resolve().parents[5] / "web"
_PAGES = {"/": "console/index.html", "/docs": "docs/index.html", "/docs/": "docs/index.html"}


def web_dir() -> Path:
    return Path(os.environ.get("EARSHOT_WEB_DIR", str(_REPO_WEB)))


def with_web_pages(app: Any) -> Any:
    """``app`` with the console and docs pages in front of it (GET only; everything else passes through)."""
    root = web_dir()
    static = SharedDataMiddleware(
        app,
        {"/console": str(root / "console"), "/vendor": str(root / "vendor"), "/docs/assets": str(root / "docs")},
        cache=False,
    )

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        page = _PAGES.get(environ.get("PATH_INFO", ""))
        if page is not None and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            path = root / page
            if path.is_file():
                body = path.read_bytes()
                start_response(
                    "200 OK",
                    [
                        ("Content-Type", "text/html; charset=utf-8"),
                        ("Content-Length", str(len(body))),
                        ("Cache-Control", "no-cache"),
                    ],
                )
                return [body]
        return static(environ, start_response)

    return application
