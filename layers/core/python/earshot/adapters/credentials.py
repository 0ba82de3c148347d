"""Provider credentials by reference: ``env:NAME`` locally, ``ssm:/path`` or ``secret:name`` in AWS.

The catalog never holds a secret, only where to find it. Cloud lookups go through Powertools
Parameters, cached for five minutes so a warm Lambda does not call SSM on every request.
"""

from __future__ import annotations

import os

from earshot.errors import ProviderError

_CACHE_SECONDS = 300


def resolve_credential(reference: str, *, sku: str) -> str:
    """The secret ``reference`` points at. Raises ``ProviderError`` naming the SKU, never the value."""
    kind, _, name = reference.partition(":")
    value: str | None
    if kind == "env":
        value = os.environ.get(name)
    elif kind == "ssm":
        from aws_lambda_powertools.utilities import parameters

        value = str(parameters.get_parameter(name, decrypt=True, max_age=_CACHE_SECONDS))
    elif kind == "secret":
        from aws_lambda_powertools.utilities import parameters

        value = str(parameters.get_secret(name, max_age=_CACHE_SECONDS))
    else:
        value = None
    if not value:
        raise ProviderError(f"model {sku!r} is not configured: its credential ({kind}:...) is missing")
    return value
