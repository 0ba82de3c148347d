"""Where a request's audio comes from: the upload itself, base64 / data: URLs, or an https URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from earshot.errors import InvalidRequestError
from earshot.ports import Principal
from earshot.runtime import Runtime
from earshot.services.metered import AudioPayload


def _url_filename(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1]


def from_url(runtime: Runtime, url: str, *, deadline_sec: float, max_bytes: int | None = None) -> AudioPayload:
    """Fetch ``url`` through the SSRF-safe fetcher (https only unless loopback is allowed for tests)."""
    from earshot.adapters.fetcher import fetch_audio  # httpx/httpcore: only URL requests pay for the import
    from earshot.url_policy import HTTPS_ONLY

    settings = runtime.settings
    fetched = fetch_audio(  # checks the URL and every redirect hop under the caller-URL policy
        url,
        max_bytes=max_bytes or settings.max_fetch_bytes,
        deadline_sec=deadline_sec,
        allow_loopback=settings.allow_loopback_urls,
        allowed_schemes=HTTPS_ONLY,
    )
    return AudioPayload(fetched.data, _url_filename(fetched.final_url))


def from_base64(text: str, *, max_bytes: int) -> AudioPayload:
    """Plain base64 or a ``data:audio/...;base64,`` URL, size-checked before decoding."""
    from earshot.adapters.fetcher import decode_base64_audio, parse_data_url

    if text.startswith("data:"):
        _mime, data = parse_data_url(text, max_bytes=max_bytes)
        return AudioPayload(data)
    return AudioPayload(decode_base64_audio(text, max_bytes=max_bytes))


def from_upload_or_url(
    runtime: Runtime,
    *,
    data: bytes | None,
    filename: str,
    url: str | None,
    deadline_sec: float,
    file_id: str | None = None,
    principal: Principal | None = None,
) -> AudioPayload:
    """Exactly one of an uploaded ``file``, a ``url``, or the ``file_id`` of a finished upload."""
    given = [name for name, value in (("file", data), ("url", url), ("file_id", file_id)) if value]
    if len(given) > 1:
        raise InvalidRequestError(f"send only one of file, url and file_id (got {', '.join(given)})", param=given[1])
    if file_id:
        from earshot.services.uploads import audio_from_file_id

        assert principal is not None
        return audio_from_file_id(runtime, principal, file_id)
    if url:
        return from_url(runtime, url, deadline_sec=deadline_sec, max_bytes=runtime.settings.max_inline_bytes)
    if data is None:
        raise InvalidRequestError("missing the audio: send a 'file', a 'url' or a 'file_id'", param="file")
    return AudioPayload(data, filename)
