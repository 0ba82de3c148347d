"""Audio from a request, staged as a private temporary file that ffprobe and the engines can read."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from earshot.errors import FileTooLargeError, InvalidAudioError
from earshot.ports import BlobStore
from earshot.uploaded import StagedUpload

MB = 1024 * 1024


def too_large(size: int, limit: int) -> FileTooLargeError:
    return FileTooLargeError(
        f"the audio is {size / MB:.1f} MB; the inline upload limit is {limit / MB:.1f} MB. "
        "Upload larger files with POST /v1/uploads (a presigned upload of up to 500 MB, then pass its file_id) "
        "or pass an https 'url' to fetch it from.",
        param="file",
    )


def check_inline_size(size: int, limit: int) -> None:
    if size > limit:
        raise too_large(size, limit)


@contextmanager
def staged_blob(blobs: BlobStore, key: str, filename: str = "") -> Iterator[Path]:
    """The blob ``key`` streamed into a private temporary file (deleted afterwards): big uploads reach ffprobe and
    the engines through /tmp, never whole in memory."""
    fd, name = tempfile.mkstemp(prefix="earshot-", suffix=_suffix(filename))
    os.close(fd)
    path = Path(name)
    try:
        blobs.download(key, path)
        if path.stat().st_size == 0:
            raise InvalidAudioError("the audio file is empty", param="file")
        yield path
    finally:
        path.unlink(missing_ok=True)


def staging_file(filename: str = "") -> Path:
    """A new private temporary file, named like the ones ``staged_audio`` makes, for an upload to be written to."""
    fd, name = tempfile.mkstemp(prefix="earshot-", suffix=_suffix(filename))
    os.close(fd)
    return Path(name)


def _suffix(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".audio"


@contextmanager
def staged_audio(data: bytes | StagedUpload, filename: str = "") -> Iterator[Path]:
    """Write ``data`` to a temporary file (deleted afterwards) and yield its path; an upload the server already
    streamed to disk is used in place (its request deletes it once the answer is sent: unlinking a 20 MiB file
    here took ~6 ms of every such answer's latency)."""
    if not len(data):
        raise InvalidAudioError("the audio file is empty", param="file")
    if isinstance(data, StagedUpload):
        yield data.path
        return
    fd, name = tempfile.mkstemp(prefix="earshot-", suffix=_suffix(filename))
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        yield path
    finally:
        path.unlink(missing_ok=True)
