"""``multipart/form-data`` bodies (RFC 7578), parsed in one streaming pass.

The parser reads the body in pieces from any ``read(size)`` source: the decoded body of an API Gateway event
(``parse_multipart``), or, in the local server, the request body as it arrives (``parse_multipart_stream``).
Each part's content goes straight into its own buffer as its bytes arrive, so the file part is the only copy of
the audio made here, and a file part larger than the caller's limit is refused as soon as it passes it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message

from earshot.errors import EarshotError, InvalidRequestError

_PIECE = 1024 * 1024
# A part's header block (Content-Disposition, Content-Type) is a few hundred bytes; this bounds a hostile one.
_MAX_PART_HEADERS = 64 * 1024
_INCOMPLETE = "the multipart body is incomplete: it ends without its closing boundary"


@dataclass
class UploadedFile:
    filename: str
    content_type: str
    data: bytes


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
) -> MultipartForm:
    """Split a form read from ``read`` into text fields and files, in one pass.

    ``file_limit(size)`` is asked as a file part grows; the error it returns is raised at once (the rest of the
    body is never read). A body without its close delimiter (a client cut off mid-upload) is refused whole:
    nothing of it is processed. Malformed bodies raise ``InvalidRequestError``.
    """
    if not is_multipart(content_type):
        raise InvalidRequestError("expected a multipart/form-data body with a 'file' field")
    if "boundary=" not in content_type:
        raise InvalidRequestError("multipart/form-data content type has no boundary")
    boundary = _boundary(content_type)
    if not boundary or len(boundary) > 200:
        raise InvalidRequestError("multipart/form-data content type has an invalid boundary")
    return _Parser(read, b"\r\n--" + boundary, file_limit).parse()


class _Parser:
    """The body as a window ``buf[pos:]`` over what has been read; the window slides as parts are consumed."""

    def __init__(
        self, read: Callable[[int], bytes], delimiter: bytes, file_limit: Callable[[int], EarshotError | None] | None
    ) -> None:
        self._read = read
        self._delimiter = delimiter
        self._file_limit = file_limit
        # A CRLF in front lets the opening delimiter (which may start the body) be found like every other one.
        self._buf = b"\r\n"
        self._pos = 0
        self._eof = False

    def _more(self) -> bool:
        """Append the next piece to the window (dropping what is consumed); False at the end of the body."""
        if self._eof:
            return False
        piece = self._read(_PIECE)
        if not piece:
            self._eof = True
            return False
        self._buf = self._buf[self._pos :] + piece
        self._pos = 0
        return True

    def _find(self, needle: bytes, start: int) -> int:
        """``needle`` at or after ``start`` (relative to the window) within a part's header block, reading on as
        needed; -1 when the body ends or the block grows past ``_MAX_PART_HEADERS``."""
        while (found := self._buf.find(needle, self._pos + start)) < 0:
            if len(self._buf) - self._pos > _MAX_PART_HEADERS or not self._more():
                return -1
        return found - self._pos

    def parse(self) -> MultipartForm:
        form = MultipartForm()
        delimiter = self._delimiter
        # The first delimiter opens the body, or follows a preamble (which is ignored, read in bounded pieces).
        while (found := self._buf.find(delimiter, self._pos)) < 0:
            self._pos = max(self._pos, len(self._buf) - len(delimiter) + 1)
            if not self._more():
                raise InvalidRequestError(_INCOMPLETE)
        self._pos = found + len(delimiter)
        while True:
            while len(self._buf) - self._pos < 2:
                if not self._more():
                    raise InvalidRequestError(_INCOMPLETE)
            if self._buf.startswith(b"--", self._pos):  # "--" after a delimiter closes the form
                return form
            headers = self._part_headers()
            self._add_part(form, headers)

    def _part_headers(self) -> dict[str, str]:
        line_end = self._find(b"\r\n", 0)  # past any transport padding
        headers_end = self._find(b"\r\n\r\n", line_end) if line_end >= 0 else -1
        if headers_end < 0:
            if self._eof:
                raise InvalidRequestError(_INCOMPLETE)
            raise InvalidRequestError("malformed multipart body: a part has no blank line after its headers")
        block = self._buf[self._pos + line_end + 2 : self._pos + headers_end]
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

    def _content(self, *, limit: Callable[[int], EarshotError | None] | None) -> bytes:
        """The part's content up to the next delimiter, copied once into its own buffer as it arrives."""
        delimiter = self._delimiter
        sink = io.BytesIO()
        while True:
            found = self._buf.find(delimiter, self._pos)
            if found >= 0:
                sink.write(memoryview(self._buf)[self._pos : found])
                self._pos = found + len(delimiter)
                break
            keep = max(self._pos, len(self._buf) - len(delimiter) + 1)  # a delimiter may straddle two pieces
            sink.write(memoryview(self._buf)[self._pos : keep])
            self._pos = keep
            if limit is not None and (error := limit(sink.tell())) is not None:
                raise error
            if not self._more():
                raise InvalidRequestError(_INCOMPLETE)
        if limit is not None and (error := limit(sink.tell())) is not None:
            raise error
        return sink.getvalue()

    def _add_part(self, form: MultipartForm, headers: dict[str, str]) -> None:
        name, filename = _disposition(headers.get("content-disposition", ""))
        content = self._content(limit=self._file_limit if filename is not None else None)
        if not name:
            raise InvalidRequestError("a multipart part has no form-data name")
        if filename is not None:
            if name in form.files:
                raise InvalidRequestError(f"more than one file in field {name!r}", param=name)
            part_type = headers.get("content-type", "application/octet-stream")
            form.files[name] = UploadedFile(filename=filename, content_type=part_type, data=content)
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
