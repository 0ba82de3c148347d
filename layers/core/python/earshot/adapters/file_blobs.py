"""``BlobStore`` on the local filesystem: one file per key under the data dir."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from earshot.errors import AuthError, InvalidRequestError, NotFoundError
from earshot.ports import PresignedUpload


class FileBlobStore:
    """Blobs as files; presigned uploads are HMAC-signed tokens the local server verifies."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        secret_file = self.root / ".upload-signing-key"
        if not secret_file.exists():
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".key-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
            os.replace(tmp, secret_file)
        self._secret = secret_file.read_bytes()

    def presign_upload(self, key: str, *, max_bytes: int, expires_in: int) -> PresignedUpload:
        self._path(key)  # refuse keys that escape the root before signing them
        expires_at = int(time.time()) + expires_in
        claims = json.dumps({"key": key, "max": max_bytes, "exp": expires_at}, separators=(",", ":")).encode()
        payload = base64.urlsafe_b64encode(claims).decode().rstrip("=")
        signature = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()
        return PresignedUpload(url=f"/_local/uploads/{payload}.{signature}", fields={}, expires_at=expires_at)

    def verify_upload_token(self, token: str) -> tuple[str, int]:
        """(key, max_bytes) of a token this store signed and that has not expired, else ``AuthError``."""
        payload, _, signature = token.partition(".")
        expected = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode()):  # bytes: a non-ASCII token is just wrong
            raise AuthError("the upload URL is not valid")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if int(claims["exp"]) < time.time():
            raise AuthError("the upload URL has expired; ask POST /v1/uploads for a new one")
        return str(claims["key"]), int(claims["max"])

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

    def staging_file(self, key: str) -> Path:
        """A new private file beside where ``key`` will live, to write a blob into before ``adopt``."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".put-")
        os.close(fd)
        return Path(tmp)

    def adopt(self, key: str, staged: Path) -> None:
        """Make the finished file ``staged`` (from ``staging_file``) the blob ``key``, atomically."""
        os.replace(staged, self._path(key))

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(f"no blob {key}") from exc

    def download(self, key: str, path: Path) -> None:
        """Copy the blob to ``path`` in pieces, as the S3 adapter streams it."""
        try:
            shutil.copyfile(self._path(key), path)
        except FileNotFoundError as exc:
            raise NotFoundError(f"no blob {key}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
