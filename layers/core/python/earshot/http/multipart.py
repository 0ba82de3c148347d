"""``multipart/form-data`` bodies (RFC 7578), parsed in one pass over the body."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message

from earshot.errors import InvalidRequestError


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


def _is_closed(body: bytes, boundary: bytes) -> bool:
    """Whether the body holds the close delimiter (``--boundary--``, RFC 2046 5.1.1) at the start of a line."""
    close = b"--" + boundary + b"--"
    return body.startswith(close) or body.rfind(b"\r\n" + close) >= 0  # from the end: it is there, if anywhere


def is_multipart(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


def parse_multipart(body: bytes, content_type: str) -> MultipartForm:
    """Split a form into text fields and files in one pass. Malformed bodies raise ``InvalidRequestError``.

    Delimiters are found with ``bytes.find`` over the body as it is; each part's content is sliced out once
    (the file part's bytes are the only copy of the audio made here). A body without its close delimiter
    (a client cut off mid-upload) is refused whole, never processed.
    """
    if not is_multipart(content_type):
        raise InvalidRequestError("expected a multipart/form-data body with a 'file' field")
    if "boundary=" not in content_type:
        raise InvalidRequestError("multipart/form-data content type has no boundary")
    boundary = _boundary(content_type)
    if not boundary or len(boundary) > 200:
        raise InvalidRequestError("multipart/form-data content type has an invalid boundary")
    if not _is_closed(body, boundary):
        # A client cut off mid-upload sends a form without its closing delimiter: nothing of it is processed.
        raise InvalidRequestError("the multipart body is incomplete: it ends without its closing boundary")
    form = MultipartForm()
    delimiter = b"\r\n--" + boundary
    # The first delimiter opens the body, or follows a preamble (which is ignored).
    if body.startswith(delimiter[2:]):
        position = len(delimiter) - 2
    else:
        found = body.find(delimiter)
        if found < 0:
            raise InvalidRequestError("malformed multipart body: no part delimiter")
        position = found + len(delimiter)
    while not body.startswith(b"--", position):  # "--" after a delimiter closes the form
        line_end = body.find(b"\r\n", position)  # past any transport padding
        headers_end = body.find(b"\r\n\r\n", line_end) if line_end >= 0 else -1
        if headers_end < 0:
            raise InvalidRequestError("malformed multipart body: a part has no blank line after its headers")
        content_start = headers_end + 4
        content_end = body.find(delimiter, content_start)
        if content_end < 0:
            raise InvalidRequestError("malformed multipart body: a part does not end")
        headers = _part_headers(body[line_end + 2 : headers_end])
        _add_part(form, headers, body[content_start:content_end])
        position = content_end + len(delimiter)
    return form


def _part_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    if not block:
        return headers
    for line in block.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon:
            raise InvalidRequestError("malformed multipart body: a part header has no colon")
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("utf-8", "replace")
    return headers


def _add_part(form: MultipartForm, headers: dict[str, str], content: bytes) -> None:
    name, filename = _disposition(headers.get("content-disposition", ""))
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
