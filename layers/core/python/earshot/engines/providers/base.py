"""What every upstream engine holds: its endpoint, key, default model, HTTP client, deadline and retry policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Required, TypedDict

import httpx

from earshot.engines.base import TranscriptionOptions
from earshot.engines.providers.http import (
    DEFAULT_POLICY,
    RequestBuilder,
    RetryPolicy,
    call_upstream,
    default_http_client,
)

DEFAULT_DEADLINE_SEC = 120.0


class UpstreamOptions(TypedDict, total=False):
    """The constructor keywords every ``UpstreamEngine`` takes; each engine adds its own size limit to them."""

    base_url: str | None
    api_key: Required[str]
    upstream_model: str
    client_factory: Callable[[], httpx.Client]
    provider: str
    default_deadline_sec: float
    retry_policy: RetryPolicy


class UpstreamEngine:
    """The state and plumbing the upstream engines share; each names its defaults in the class attributes.

    Parameters
    ----------
    base_url
        The API root including its version; ``default_base_url`` when None. A trailing slash is dropped.
    api_key
        The upstream's credential: sent in the engine's auth header, never logged, struck from upstream errors.
    upstream_model
        The model when a call names none; ``default_model`` when not given.
    client_factory
        Builds the ``httpx.Client`` this engine keeps; its transport must not retry.
    provider
        The upstream's name in messages and logs; ``default_provider`` when not given.
    default_deadline_sec
        The deadline of a transcription whose options set none.
    retry_policy
        Backoff and the injectable clock, sleep and random source of ``call_upstream``.
    """

    default_base_url: ClassVar[str]
    default_model: ClassVar[str]
    default_provider: ClassVar[str]

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str,
        upstream_model: str | None = None,
        client_factory: Callable[[], httpx.Client] = default_http_client,
        provider: str | None = None,
        default_deadline_sec: float = DEFAULT_DEADLINE_SEC,
        retry_policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        self._base_url = (base_url or self.default_base_url).rstrip("/")
        self._api_key = api_key
        self._model = self.default_model if upstream_model is None else upstream_model
        self._client = client_factory()
        self._provider = self.default_provider if provider is None else provider
        self._default_deadline_sec = default_deadline_sec
        self._policy = retry_policy

    def close(self) -> None:
        """Close the kept ``httpx.Client`` and its pooled connections."""
        self._client.close()

    def _deadline_sec(self, options: TranscriptionOptions) -> float:
        return options.deadline_sec if options.deadline_sec is not None else self._default_deadline_sec

    def _call(self, request_builder: RequestBuilder, *, deadline_sec: float) -> Any:
        """``call_upstream`` through this engine's client and retry policy, its API key struck from errors."""
        return call_upstream(
            self._client,
            request_builder,
            deadline_sec=deadline_sec,
            provider=self._provider,
            redact=(self._api_key,),
            policy=self._policy,
        )
