"""Where a request's audio comes from, resolved in one place for every route and the workflow.

An ``AudioReference`` names exactly one of: the uploaded ``file`` bytes, an https ``url`` (fetched
through the SSRF-safe fetcher), the ``file_id`` of a finished upload, or ``inline`` base64 / a
``data:audio/...;base64,`` URL. ``resolve_audio`` turns it into bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from earshot.errors import InvalidRequestError
from earshot.ports import Principal
from earshot.runtime import Runtime
from earshot.services.charged_run import AudioPayload
from earshot.uploaded import StagedUpload


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
    data: bytes | StagedUpload | None,
    filename: str,
    url: str | None,
    deadline_sec: float,
    file_id: str | None = None,
    principal: Principal | None = None,
) -> AudioPayload:
    """Exactly one of an uploaded ``file``, a ``url``, or the ``file_id`` of a finished upload."""
    return resolve_audio(
        runtime,
        AudioReference(data=data, url=url, file_id=file_id, filename=filename),
        principal=principal,
        deadline_sec=deadline_sec,
        max_bytes=runtime.settings.max_inline_bytes if url else None,
    )


@dataclass(frozen=True)
class AudioReference:
    """Exactly one of ``data`` (the uploaded file), ``url``, ``file_id`` or ``inline`` (base64 or a data URL)."""

    data: bytes | StagedUpload | None = None
    url: str | None = None
    file_id: str | None = None
    inline: str | None = None
    filename: str = ""

    def given(self) -> list[str]:
        named = (("file", self.data), ("url", self.url), ("file_id", self.file_id), ("audio", self.inline))
        return [name for name, value in named if value]


def resolve_audio(
    runtime: Runtime,
    reference: AudioReference,
    *,
    principal: Principal | None,
    deadline_sec: float,
    max_bytes: int | None = None,
) -> AudioPayload:
    """The bytes ``reference`` names; a missing or doubled reference is a 400 before anything else."""
    given = reference.given()
    if len(given) > 1:
        raise InvalidRequestError(f"send only one of file, url and file_id (got {', '.join(given)})", param=given[1])
    limit = max_bytes or runtime.settings.max_fetch_bytes
    if reference.file_id:
        from earshot.services.uploads import audio_from_file_id

        if principal is None:
            raise InvalidRequestError("a file_id needs the caller's account", param="file_id")
        return audio_from_file_id(runtime, principal, reference.file_id)
    if reference.url:
        return from_url(runtime, reference.url, deadline_sec=deadline_sec, max_bytes=limit)
    if reference.inline:
        return from_base64(reference.inline, max_bytes=limit)
    if reference.data is None:
        raise InvalidRequestError("missing the audio: send a 'file', a 'url' or a 'file_id'", param="file")
    return AudioPayload(reference.data, reference.filename)
