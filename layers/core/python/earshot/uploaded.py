"""``StagedUpload``: an uploaded file that is already on disk.

The local server streams a multipart file part straight into a private temporary file (``earshot.http.forms``), so
the audio reaches metering and the engines without ever being held in memory or copied again; API Gateway's
events carry the body inline, and there the file part stays ``bytes``. Both flow through the same form fields and
``AudioPayload``; ``staged_audio`` uses a staged upload in place.
"""

from __future__ import annotations

from pathlib import Path


class StagedUpload:
    """The uploaded file at ``path`` (``size`` bytes), deleted by the server that staged it once the request's answer
    is sent (``RequestBody.staged``). A plain class, not a model: it never appears in the API's schema."""

    __slots__ = ("path", "size")

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size

    def __len__(self) -> int:
        return self.size

    def read_bytes(self) -> bytes:
        """The whole file (for what must hold it in memory: a blob stored for a task)."""
        return self.path.read_bytes()


def upload_bytes(data: bytes | StagedUpload) -> bytes:
    return data.read_bytes() if isinstance(data, StagedUpload) else data
