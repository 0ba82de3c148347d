"""``multipart/form-data`` bodies (RFC 7578), parsed in one streaming pass.

The parser reads the body in pieces from any ``read(size)`` source: the decoded body of an API Gateway event
(``parse_multipart``), or, in the local server, the request body as it arrives (``parse_multipart_stream``).
Each part's content goes straight into its own buffer as its bytes arrive, so the file part is the only copy of
the audio made here, and a file part larger than the caller's limit is refused as soon as it passes it.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Protocol

from earshot.errors import EarshotError, InvalidRequestError

_PIECE = 1024 * 1024
# A part's header block (Content-Disposition, Content-Type) is a few hundred bytes; this bounds a hostile one.
_MAX_PART_HEADERS = 64 * 1024
_INCOMPLETE = "the multipart body is incomplete: it ends without its closing boundary"
# The parser's window: a piece, a part's header block at its bound, and a delimiter (a boundary is at most 200).
_WINDOW_BYTES = _PIECE + _MAX_PART_HEADERS + 256
_WINDOWS = threading.local()


class Sink(Protocol):
    """Where a part's content is written as it arrives: a file, a ``BytesIO``."""

    def write(self, data: memoryview, /) -> object: ...

    def close(self) -> None: ...


@dataclass
class UploadedFile:
    """A file part. Its content is ``data``, or, when the parser spooled it (``spool``), the file ``spooled``
    (written, left open at its end for the caller) with ``data`` empty."""

    filename: str
    content_type: str
    data: bytes
    size: int = 0
    spooled: Sink | None = None


@dataclass
class MultipartForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)

    def first(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None


def _disposition(header: str) -> tuple[str | None, str | None]:
    """(name, filename) of a ``Content-Disposition: form-data`` header, RFC 2231/7578 aware."""
    message = Message()
    message["content-disposition"] = header
    name = message.get_param("name", header="content-disposition")
    filename = message.get_filename()
    return (str(name) if name is not None else None, filename)


def _boundary(content_type: str) -> bytes:
    message = Message()
    message["content-type"] = content_type
    value = message.get_param("boundary")
    return str(value).encode("latin-1", "replace") if isinstance(value, str) else b""


def is_multipart(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


def parse_multipart(body: bytes, content_type: str) -> MultipartForm:
    """Split a form held in memory into text fields and files. Malformed bodies raise ``InvalidRequestError``."""
    return parse_multipart_stream(io.BytesIO(body).read, content_type)


def parse_multipart_stream(
    read: Callable[[int], bytes],
    content_type: str,
    *,
    file_limit: Callable[[int], EarshotError | None] | None = None,
    spool: Callable[[str, str], Sink] | None = None,
) -> MultipartForm:
    """Split a form read from ``read`` into text fields and files, in one pass.

    ``file_limit(size)`` is asked as a file part grows; the error it returns is raised at once (the rest of the
    body is never read). ``spool(name, filename)``, when given, opens the file each file part is written to as it
    arrives (a 500 MB upload never in memory); the caller owns (and closes) what it returns. A body without its
    close delimiter (a client cut off mid-upload) is refused whole: nothing of it is processed. Malformed bodies
    raise ``InvalidRequestError``.
    """
    if not is_multipart(content_type):
        raise InvalidRequestError("expected a multipart/form-data body with a 'file' field")
    if "boundary=" not in content_type:
        raise InvalidRequestError("multipart/form-data content type has no boundary")
    boundary = _boundary(content_type)
    if not boundary or len(boundary) > 200:
        raise InvalidRequestError("multipart/form-data content type has an invalid boundary")
    return _Parser(read, b"\r\n--" + boundary, file_limit, spool).parse()


def _window() -> bytearray:
    """This thread's parsing window, reused form after form: a new 1.1 MiB one per form (allocated, zeroed and
    faulted in) was ~0.4 ms of a 1 MiB upload's time in the local server's worker. Nothing of it outlives a parse
    (each part's content is copied out to its sink), and a parse never starts inside another on one thread."""
    window: bytearray | None = getattr(_WINDOWS, "window", None)
    if window is None:
        window = _WINDOWS.window = bytearray(_WINDOW_BYTES)
    return window


class _Parser:
    """The body as a window ``buf[pos:end]`` over one reused buffer: each piece is read into it in place (``readinto``
    where the source has it), consumed bytes are dropped by moving the unread tail to the front, and a part's
    content is written from the window to its sink. A 20 MiB upload thus costs one copy into the sink (and none
    into fresh memory) instead of a new string per piece and per window slide."""

    def __init__(
        self,
        read: Callable[[int], bytes],
        delimiter: bytes,
        file_limit: Callable[[int], EarshotError | None] | None,
        spool: Callable[[str, str], Sink] | None = None,
    ) -> None:
        self._read = read
        owner: Any = getattr(read, "__self__", None)  # a bound ``read``: use its ``readinto`` when it has one
        self._readinto: Callable[[memoryview], int | None] | None = getattr(owner, "readinto", None)
        self._delimiter = delimiter
        self._file_limit = file_limit
        self._spool = spool
        # A CRLF in front lets the opening delimiter (which may start the body) be found like every other one.
        self._buf = _window()
        self._buf[:2] = b"\r\n"
        self._pos = 0
        self._end = 2
        self._eof = False

    def _more(self) -> bool:
        """Append the next piece to the window (dropping what is consumed); False at the end of the body."""
        if self._eof:
            return False
        buf, pos, end = self._buf, self._pos, self._end
        if pos:  # slide the unread tail to the front
            buf[: end - pos] = buf[pos:end]
            end -= pos
            self._pos = 0
        room = min(_PIECE, len(buf) - end)
        if room <= 0:  # a window already full of unconsumed bytes (a header block at its bound): a larger one
            self._buf = buf = buf + bytes(_PIECE)  # of its own (the thread's reused window keeps its size)
            room = _PIECE
        if self._readinto is not None:
            size = self._readinto(memoryview(buf)[end : end + room]) or 0
        else:
            piece = self._read(room)
            size = len(piece)
            buf[end : end + size] = piece
        self._end = end + size
        if not size:
            self._eof = True
            return False
        return True

    def _find(self, needle: bytes, start: int) -> int:
        """``needle`` at or after ``start`` (relative to the window) within a part's header block, reading on as
        needed; -1 when the body ends or the block grows past ``_MAX_PART_HEADERS``."""
        while (found := self._buf.find(needle, self._pos + start, self._end)) < 0:
            if self._end - self._pos > _MAX_PART_HEADERS or not self._more():
                return -1
        return found - self._pos

    def parse(self) -> MultipartForm:
        form = MultipartForm()
        delimiter = self._delimiter
        try:
            # The first delimiter opens the body, or follows a preamble (which is ignored, read in bounded pieces).
            while (found := self._buf.find(delimiter, self._pos, self._end)) < 0:
                self._pos = max(self._pos, self._end - len(delimiter) + 1)
                if not self._more():
                    raise InvalidRequestError(_INCOMPLETE)
            self._pos = found + len(delimiter)
            while True:
                while self._end - self._pos < 2:
                    if not self._more():
                        raise InvalidRequestError(_INCOMPLETE)
                if self._buf.startswith(b"--", self._pos):  # "--" after a delimiter closes the form
                    return form
                headers = self._part_headers()
                self._add_part(form, headers)
        except BaseException:
            for upload in form.files.values():
                if upload.spooled is not None:
                    upload.spooled.close()
            raise

    def _part_headers(self) -> dict[str, str]:
        line_end = self._find(b"\r\n", 0)  # past any transport padding
        headers_end = self._find(b"\r\n\r\n", line_end) if line_end >= 0 else -1
        if headers_end < 0:
            if self._eof:
                raise InvalidRequestError(_INCOMPLETE)
            raise InvalidRequestError("malformed multipart body: a part has no blank line after its headers")
        block = bytes(self._buf[self._pos + line_end + 2 : self._pos + headers_end])
        self._pos += headers_end + 4
        headers: dict[str, str] = {}
        if not block:
            return headers
        for line in block.split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if not colon:
                raise InvalidRequestError("malformed multipart body: a part header has no colon")
            headers[name.strip().decode("latin-1").lower()] = value.strip().decode("utf-8", "replace")
        return headers

    def _content(self, sink: Sink, *, limit: Callable[[int], EarshotError | None] | None) -> int:
        """Write the part's content, up to the next delimiter, to ``sink`` as it arrives; returns its size."""
        delimiter = self._delimiter
        size = 0
        while True:
            window = memoryview(self._buf)
            found = self._buf.find(delimiter, self._pos, self._end)
            if found >= 0:
                sink.write(window[self._pos : found])
                size += found - self._pos
                self._pos = found + len(delimiter)
                break
            keep = max(self._pos, self._end - len(delimiter) + 1)  # a delimiter may straddle two pieces
            sink.write(window[self._pos : keep])
            size += keep - self._pos
            self._pos = keep
            window.release()  # the window may grow (``_more``) only with no view of it left
            if limit is not None and (error := limit(size)) is not None:
                raise error
            if not self._more():
                raise InvalidRequestError(_INCOMPLETE)
        if limit is not None and (error := limit(size)) is not None:
            raise error
        return size

    def _add_part(self, form: MultipartForm, headers: dict[str, str]) -> None:
        name, filename = _disposition(headers.get("content-disposition", ""))
        if filename is not None and self._spool is not None and name and name not in form.files:
            spooled = self._spool(name, filename)
            upload = UploadedFile(filename=filename, content_type="", data=b"", spooled=spooled)
            form.files[name] = upload  # closed by parse() if anything below fails
            upload.size = self._content(spooled, limit=self._file_limit)
            upload.content_type = headers.get("content-type", "application/octet-stream")
            return
        sink = io.BytesIO()
        self._content(sink, limit=self._file_limit if filename is not None else None)
        content = sink.getvalue()
        if not name:
            raise InvalidRequestError("a multipart part has no form-data name")
        if filename is not None:
            if name in form.files:
                raise InvalidRequestError(f"more than one file in field {name!r}", param=name)
            part_type = headers.get("content-type", "application/octet-stream")
            form.files[name] = UploadedFile(filename=filename, content_type=part_type, data=content, size=len(content))
            return
        charset = _charset(headers.get("content-type", ""))
        try:
            text = content.decode(charset)
        except (UnicodeDecodeError, LookupError) as exc:
            raise InvalidRequestError(f"field {name!r} is not valid text", param=name) from exc
        form.fields.setdefault(name, []).append(text)


def _charset(content_type: str) -> str:
    if not content_type:
        return "utf-8"
    message = Message()
    message["content-type"] = content_type
    value = message.get_param("charset")
    return str(value) if isinstance(value, str) else "utf-8"
