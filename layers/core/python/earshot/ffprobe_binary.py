"""The ffprobe binary of the Lambda layer, shipped gzip-compressed and unpacked to ``/tmp`` on first use.

The static ffprobe is 79 MB, which does not fit beside the audio libraries under Lambda's 250 MB limit for a
function's code and layers unzipped; gzip-compressed it is 29 MB. The layer carries ``bin/ffprobe.gz`` and,
next to it, ``bin/ffprobe.sha256``: one line, ``sha256=<hex> size=<bytes>``, describing the *unpacked* binary
(written by ``infra/build_layers.py`` with ``write_digest_record``).

``unpack_ffprobe`` writes the binary once per execution environment (``/tmp`` outlives invocations) under a name
derived from its digest, so a newer layer never reuses an older binary. It writes to a temporary file in the same
directory, checks size and SHA-256, then renames it into place: a file at the final name is always whole and
verified, whichever thread or process got there first.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

# Where the ffprobe layer mounts the compressed binary.
LAYER_FFPROBE_GZ = Path("/opt/bin/ffprobe.gz")
DEFAULT_TARGET_DIR = Path("/tmp")  # the only writable place in Lambda (512 MB by default)
_EXECUTABLE = 0o755
_CHUNK_BYTES = 1024 * 1024
_unpack_lock = threading.Lock()


@dataclass(frozen=True)
class BinaryDigest:
    """Size and SHA-256 (hex) of the unpacked binary."""

    sha256: str
    size: int

    def render(self) -> str:
        return f"sha256={self.sha256} size={self.size}\n"


def digest_record_path(gz: Path) -> Path:
    """``bin/ffprobe.gz`` -> ``bin/ffprobe.sha256``."""
    return gz.with_suffix(".sha256")


def digest_of(binary: Path) -> BinaryDigest:
    digest = hashlib.sha256()
    with binary.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return BinaryDigest(sha256=digest.hexdigest(), size=binary.stat().st_size)


def write_digest_record(binary: Path, gz: Path) -> BinaryDigest:
    """Record ``binary``'s size and SHA-256 next to its compressed copy ``gz``."""
    digest = digest_of(binary)
    digest_record_path(gz).write_text(digest.render())
    return digest


def read_digest_record(gz: Path) -> BinaryDigest:
    """The size and SHA-256 the layer recorded for the binary compressed in ``gz``.

    Raises
    ------
    RuntimeError
        The record is missing or malformed.
    """
    record = digest_record_path(gz)
    try:
        fields = dict(item.split("=", 1) for item in record.read_text().split())
        digest = BinaryDigest(sha256=fields["sha256"].lower(), size=int(fields["size"]))
    except FileNotFoundError:
        raise RuntimeError(f"{record} is missing: the ffprobe layer must ship it next to {gz.name}") from None
    except (KeyError, ValueError):
        raise RuntimeError(f"{record} is malformed: expected one line 'sha256=<hex> size=<bytes>'") from None
    if len(digest.sha256) != 64 or digest.size <= 0:
        raise RuntimeError(f"{record} is malformed: expected one line 'sha256=<hex> size=<bytes>'")
    return digest


def unpack_ffprobe(gz: Path, *, target_dir: Path = DEFAULT_TARGET_DIR) -> Path:
    """The executable ffprobe compressed in ``gz``, unpacked into ``target_dir`` unless it already is.

    Thread-safe; concurrent processes are safe too (each writes its own temporary file, the rename is atomic).

    Parameters
    ----------
    gz
        The gzip-compressed binary; its digest record (``digest_record_path``) lies next to it.
    target_dir
        Where to unpack; created if missing. The binary is named ``ffprobe-<first 16 hex digits of its SHA-256>``.

    Returns
    -------
    Path
        The unpacked binary, mode 0755.

    Raises
    ------
    RuntimeError
        The digest record is missing or malformed, ``gz`` is not a whole gzip file, or what it holds does not
        match the record (size or SHA-256). Nothing is left behind under the final name.
    """
    expected = read_digest_record(gz)
    target = target_dir / f"ffprobe-{expected.sha256[:16]}"
    with _unpack_lock:
        if not _already_unpacked(target, expected):
            _unpack_verified(gz, target, expected)
    return target


def _already_unpacked(target: Path, expected: BinaryDigest) -> bool:
    # Only a verified file is ever renamed to this name, so its size is a sufficient check (no re-hash).
    try:
        stat = target.stat()
    except FileNotFoundError:
        return False
    return stat.st_size == expected.size and os.access(target, os.X_OK)


def _unpack_verified(gz: Path, target: Path, expected: BinaryDigest) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            try:
                with gzip.open(gz, "rb") as source:
                    while chunk := source.read(_CHUNK_BYTES):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
            except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a truncated file, EOFError
                raise RuntimeError(f"cannot unpack {gz}: {exc}") from exc
            os.fchmod(out.fileno(), _EXECUTABLE)
        if size != expected.size or digest.hexdigest() != expected.sha256:
            raise RuntimeError(
                f"{gz} holds {size} bytes with sha256 {digest.hexdigest()}, but {digest_record_path(gz).name} "
                f"records {expected.size} bytes with sha256 {expected.sha256}: the ffprobe layer is corrupt or "
                "its files are from different builds; rebuild it (`make layers`)"
            )
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
