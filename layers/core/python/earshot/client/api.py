"""A small client of the public HTTP API: uploads with progress, task events followed live, errors as messages.

Talks only HTTP (httpx) to ``base_url`` with a Bearer key, so it works against ``make serve`` and a
deployed stage alike. Nothing here imports the server side.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
# Requests may carry audio up to this size inline; larger files go through /v1/uploads (the server's default).
DEFAULT_INLINE_LIMIT = 25 * 1024 * 1024
FINAL = ("completed", "failed")


class ClientError(Exception):
    """An answer the caller should read: the API's error envelope message, or why the API was unreachable."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event."""

    type: str
    data: Any
    id: str | None = None


@dataclass
class Client:
    base_url: str
    api_key: str
    timeout: float = 120.0
    _http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {self.api_key}", "User-Agent": "earshot-cli"}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=self.timeout)

    def close(self) -> None:
        self._http.close()

    # -- plain requests --------------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach {self.base_url}: {exc}") from exc
        raise_for_envelope(response)
        return response

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    # -- uploads -----------------------------------------------------------------------------------------------
    def upload(
        self,
        path: Path,
        *,
        process: dict[str, Any] | None = None,
        on_progress: Callable[[int], object] | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/uploads`` then the file to its presigned form; returns the upload (``id``, ``task_id``)."""
        size = path.stat().st_size
        body: dict[str, Any] = {"filename": path.name, "bytes": size}
        if process is not None:
            body["process"] = process
        upload: dict[str, Any] = self.request("POST", "/v1/uploads", json=body).json()
        form = upload["upload"]
        with path.open("rb") as handle:
            reader = _ProgressReader(handle, on_progress)
            try:
                response = httpx.post(
                    form["url"],
                    data=form.get("fields") or {},
                    files={form.get("file_field", "file"): (path.name, reader)},  # type: ignore[dict-item]
                    timeout=httpx.Timeout(self.timeout, write=None),
                )
            except httpx.TransportError as exc:
                raise ClientError(f"the upload to {form['url']} failed: {exc}") from exc
        if response.status_code >= 300:
            raise ClientError(_upload_error(response), status=response.status_code)
        return upload

    # -- tasks -------------------------------------------------------------------------------------------------
    def wait_for_task(self, task_id: str, *, appear_within: float = 30.0) -> dict[str, Any]:
        """The task once it exists (a self-processing upload creates it when the file lands)."""
        deadline = time.monotonic() + appear_within
        while True:
            try:
                task: dict[str, Any] = self.get_json(f"/v1/tasks/{task_id}")
                return task
            except ClientError as error:
                if error.status != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def follow(self, task_id: str) -> Iterator[Event]:
        """A task's events until its ``done`` event, reconnecting with Last-Event-ID where a stream is cut
        (a deployed stage answers in windows of at most 25 s)."""
        last_id: str | None = None
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                with self._http.stream(
                    "GET", f"/v1/tasks/{task_id}/events", headers=headers, timeout=httpx.Timeout(60.0)
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise_for_envelope(response)
                    for event in parse_sse(response.iter_lines()):
                        if event.id is not None:
                            last_id = event.id
                        yield event
                        if event.type == "done":
                            return
            except httpx.TransportError:
                time.sleep(1.0)  # a cut connection: resume from the last event seen
            else:
                time.sleep(0.5)  # the server ended a window without `done`: reconnect


def parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    event_type, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                text = "\n".join(data)
                try:
                    value: Any = json.loads(text)
                except ValueError:
                    value = text
                yield Event(event_type, value, event_id)
            event_type, data, event_id = "message", [], None
        elif line.startswith(":"):
            continue
        else:
            name, _, value_text = line.partition(":")
            value_text = value_text.removeprefix(" ")
            if name == "event":
                event_type = value_text
            elif name == "data":
                data.append(value_text)
            elif name == "id":
                event_id = value_text
    if data:
        yield Event(event_type, "\n".join(data), event_id)


def raise_for_envelope(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json().get("error") or {}
        message, code = str(error.get("message") or response.text), error.get("code")
    except ValueError:
        message, code = response.text.strip() or response.reason_phrase, None
    raise ClientError(message, status=response.status_code, code=code)


def _upload_error(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"the upload was refused (HTTP {response.status_code}): {response.text[:300]}"


class _ProgressReader:
    """A file object whose reads report progress (httpx streams multipart files by reading them)."""

    def __init__(self, handle: IO[bytes], on_progress: Callable[[int], object] | None) -> None:
        self._handle = handle
        self._on_progress = on_progress

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        if chunk and self._on_progress is not None:
            self._on_progress(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def fileno(self) -> int:
        return self._handle.fileno()
