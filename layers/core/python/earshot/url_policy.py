"""The one address policy for every URL a caller gives: audio URLs and callback URLs on every route.

https only, to public addresses only (the SSRF-safe fetcher's rules); in local development with
``EARSHOT_ALLOW_LOOPBACK_URLS`` also loopback hosts, and plain http to those only. The same rules
apply when a request is accepted (before any task exists or any money moves) and again when the URL
is used: the fetcher checks every hop of a download and every webhook delivery itself.
"""

from __future__ import annotations

from earshot.config import Settings, get_settings

HTTPS_ONLY = ("https",)


def check_caller_url(url: object, *, param: str, settings: Settings | None = None, unresolved_ok: bool = False) -> None:
    """Refuse ``url`` (400 ``invalid_request`` naming ``param``) unless the fetcher may reach it.

    ``unresolved_ok`` (callbacks): a host name that resolves to nothing right now is accepted at
    submission, since it is checked again at delivery, where it fails without contacting anything. A
    name that resolves to any non-public address is refused either way.
    """
    from earshot.adapters.fetcher import check_url  # httpx: only requests with a URL pay for the import
    from earshot.errors import InvalidRequestError, UnresolvedHostError

    if not isinstance(url, str) or not url:
        raise InvalidRequestError(f"the {param} must be a URL string", param=param)
    settings = settings or get_settings()
    try:
        check_url(url, allow_loopback=settings.allow_loopback_urls, allowed_schemes=HTTPS_ONLY, param=param)
    except UnresolvedHostError:
        if not unresolved_ok:
            raise
