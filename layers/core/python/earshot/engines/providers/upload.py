"""A multipart upload to an upstream, its file part streamed from disk in large pieces.

httpx's own multipart encoder reads a file part 64 kB at a time, and every piece costs a trip through httpcore and
h11: sending a 20 MiB file to a local fake upstream took 19 ms and 12 ms of CPU that way, 9 ms and 5.5 ms in 1 MiB
pieces (measured on the bench's upstream). The body is the same ``multipart/form-data`` (text fields, then the
file), with its exact Content-Length, so the upstream sees no chunked framing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from typing import BinaryIO

import httpx

PIECE_BYTES = 1024 * 1024


def _param(value: str) -> str:
    """A quoted form-data parameter value, escaped as browsers (and httpx) do."""
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def multipart_request(
    url: str,
    *,
    headers: Mapping[str, str],
    fields: Mapping[str, str | Sequence[str]],
    file_field: str,
    filename: str,
    file: BinaryIO,
    content_type: str,
    piece_bytes: int = PIECE_BYTES,
) -> httpx.Request:
    """A POST of ``fields`` (a list value repeats its field) and ``file``, read from its start in
    ``piece_bytes`` pieces when the request is sent. Build a new one per attempt: the body is a stream."""
    boundary = secrets.token_hex(16)
    head = bytearray()
    for name, value in fields.items():
        for item in [value] if isinstance(value, str) else value:
            head += f'--{boundary}\r\nContent-Disposition: form-data; name="{_param(name)}"\r\n\r\n'.encode()
            head += item.encode() + b"\r\n"
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{_param(file_field)}"; '
        f'filename="{_param(filename)}"\r\nContent-Type: {content_type}\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    file.seek(0, 2)
    size = file.tell()

    def body() -> Iterator[bytes]:
        yield bytes(head)
        file.seek(0)
        left = size
        while left > 0 and (piece := file.read(min(piece_bytes, left))):
            left -= len(piece)
            yield piece
        if left:  # the file shrank under us: never send a body shorter than its Content-Length
            raise OSError("the upload's file changed size while it was sent")
        yield tail

    return httpx.Request(
        "POST",
        url,
        headers={
            **headers,
            "content-type": f"multipart/form-data; boundary={boundary}",
            "content-length": str(len(head) + size + len(tail)),
        },
        content=body(),
    )
