"""``BlobStore`` on the local filesystem: one file per key under the data dir."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from earshot.errors import InvalidRequestError, NotFoundError


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not key or self.root not in path.parents:
            raise InvalidRequestError(f"invalid blob key {key!r}")
        return path

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half a blob.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".put-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(f"no blob {key}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
