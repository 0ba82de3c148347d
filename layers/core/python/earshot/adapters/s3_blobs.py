"""``BlobStore`` on S3: one object per key in the stage's bucket.

Encryption, versioning and lifecycle expiry are the bucket's settings (see the CDK data construct),
so nothing here asks for them per object.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from earshot.errors import InvalidRequestError, NotFoundError
from earshot.ports import PresignedUpload

# boto3 ships no type hints (mypy-boto3-s3 would add them); the client is a low-level ``boto3.client("s3")``.
S3Client = Any

_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class S3BlobStore:
    """Deployed ``BlobStore``.

    Parameters
    ----------
    bucket
        The bucket name (``EARSHOT_BUCKET_NAME``).
    client
        A low-level ``boto3`` S3 client.
    """

    def __init__(self, bucket: str, client: S3Client) -> None:
        self.bucket = bucket
        self._client = client

    @staticmethod
    def _checked(key: str) -> str:
        if not key or key.startswith("/"):
            raise InvalidRequestError(f"invalid blob key {key!r}")
        return key

    def presign_upload(self, key: str, *, max_bytes: int, expires_in: int) -> PresignedUpload:
        """A presigned S3 POST whose policy caps the size (``content-length-range``) and fixes the key."""
        post = self._client.generate_presigned_post(
            Bucket=self.bucket,
            Key=self._checked(key),
            Conditions=[["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in,
        )
        return PresignedUpload(
            url=post["url"],
            fields={k: str(v) for k, v in post["fields"].items()},
            expires_at=int(time.time()) + expires_in,
        )

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        self._client.put_object(Bucket=self.bucket, Key=self._checked(key), Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._checked(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                raise NotFoundError(f"no blob {key}") from exc
            raise
        body: bytes = response["Body"].read()
        return body

    def download(self, key: str, path: Path) -> None:
        """Stream the object to ``path`` in parts (an upload of up to 500 MiB never sits in memory whole)."""
        try:
            with path.open("wb") as out:
                self._client.download_fileobj(self.bucket, self._checked(key), out)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                raise NotFoundError(f"no blob {key}") from exc
            raise

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._checked(key))
        except ClientError as exc:
            # HEAD has no body, so S3 can only say "404".
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        # S3 answers 204 for a missing key too: deleting is idempotent by nature.
        self._client.delete_object(Bucket=self.bucket, Key=self._checked(key))
