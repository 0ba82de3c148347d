"""Provider credentials by reference, and whether an upstream model is live.

The catalog never holds a secret, only where to find it: an ordered list of references per model
(``env:NAME``, ``ssm:/path``, ``secret:name``; ``{stage}`` stands for the deployment's stage). Which
kinds count depends on where Earshot runs, so one shipped catalog serves both:

- local mode reads only ``env:`` references (no AWS call from a laptop);
- deployed (``EARSHOT_RUNTIME=aws``) reads only ``ssm:``/``secret:`` references, through Powertools
  Parameters, cached for five minutes so a warm Lambda does not call SSM on every request (a reference
  that holds nothing is remembered for a minute). A key in a deployed function's environment is never
  read: the stack grants read access to exactly the references instead (``infra.capabilities.credentials``).

An upstream model is live when one of its references holds a value. Locally its ``base_url_env``
variable may point it elsewhere (a fake upstream in tests, a self-hosted server), under the URL
policy: https, or http to loopback only with ``EARSHOT_ALLOW_LOOPBACK_URLS``.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from earshot.catalog import CatalogModel
from earshot.config import Settings

_CACHE_SECONDS = 300
_MISSING_SECONDS = 60.0
_missing: dict[str, float] = {}  # reference -> until when it is known to hold nothing (deployed lookups only)
_missing_lock = threading.Lock()


class CredentialMissingError(Exception):
    """The model is not live; the message says what to configure (names only, never a value)."""


@dataclass(frozen=True)
class UpstreamAccess:
    api_key: str
    base_url: str | None  # None: the engine's own default


@dataclass(frozen=True)
class Liveness:
    live: bool
    setup: str | None = None  # what to configure to make it live, when it is not


def usable_references(model: CatalogModel, settings: Settings) -> list[str]:
    """``model``'s references that count where this process runs, ``{stage}`` filled in, in catalog order."""
    deployed = settings.runtime == "aws"
    refs = [ref.replace("{stage}", settings.stage) for ref in model.credentials]
    return [ref for ref in refs if ref.startswith("env:") != deployed]


def upstream_access(model: CatalogModel, settings: Settings) -> UpstreamAccess:
    """The API key (first reference holding one) and base URL for an upstream ``model``.

    Raises ``CredentialMissingError`` saying what to configure; its message never holds a secret.
    """
    references = usable_references(model, settings)
    for reference in references:
        value = _read(reference)
        if value:
            return UpstreamAccess(api_key=value, base_url=_base_url(model, settings))
    raise CredentialMissingError(_what_to_configure(references, settings))


def liveness(model: CatalogModel, settings: Settings) -> Liveness:
    if not model.upstream:
        return Liveness(live=True)
    try:
        upstream_access(model, settings)
    except CredentialMissingError as missing:
        return Liveness(live=False, setup=str(missing))
    return Liveness(live=True)


def _base_url(model: CatalogModel, settings: Settings) -> str | None:
    if settings.runtime == "aws" or not model.base_url_env:
        return model.base_url
    override = os.environ.get(model.base_url_env, "").strip()
    if not override:
        return model.base_url
    from earshot.adapters.fetcher import check_url  # httpx: only an override pays for the import
    from earshot.errors import InvalidRequestError

    try:
        check_url(override, allow_loopback=settings.allow_loopback_urls, param=model.base_url_env)
    except InvalidRequestError as refused:
        raise CredentialMissingError(
            f"its base URL override {model.base_url_env} is refused by the URL policy ({refused.message}; "
            "plain http only to a loopback host with EARSHOT_ALLOW_LOOPBACK_URLS=1)"
        ) from None
    return override


def _what_to_configure(references: list[str], settings: Settings) -> str:
    if not references:
        where = "deployed stages" if settings.runtime == "aws" else "local mode"
        return f"its catalog entry names no provider credential that {where} reads"
    spelled = []
    for reference in references:
        kind, _, name = reference.partition(":")
        if kind == "env":
            spelled.append(f"set {name} in the server's environment")
        elif kind == "ssm":
            spelled.append(f"write the API key to the SSM SecureString parameter {name}")
        else:
            spelled.append(f"write the API key to the Secrets Manager secret {name}")
    return "its provider credential is not configured: " + " or ".join(spelled)


def _read(reference: str) -> str | None:
    kind, _, name = reference.partition(":")
    if kind == "env":
        return os.environ.get(name) or None
    with _missing_lock:
        if _missing.get(reference, 0.0) > time.monotonic():
            return None
    value = _read_aws(kind, name)
    if not value:
        with _missing_lock:
            _missing[reference] = time.monotonic() + _MISSING_SECONDS
    return value


def _read_aws(kind: str, name: str) -> str | None:
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        if kind == "ssm":
            return str(parameters.get_parameter(name, decrypt=True, max_age=_CACHE_SECONDS)) or None
        if kind == "secret":
            return str(parameters.get_secret(name, max_age=_CACHE_SECONDS)) or None
    except GetParameterError as failed:  # absent, or not readable by this function: not configured here
        if "NotFound" not in str(failed):  # not merely unwritten yet (access denied, throttled): tell the operator
            from earshot.observability import logger

            logger.warning(
                "provider credential unreadable", extra={"reference": f"{kind}:{name}", "reason": str(failed)}
            )
        return None
    return None
