"""``multipart/form-data`` bodies, parsed with requests-toolbelt's decoder."""

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
    return body.startswith(close) or body.find(b"\r\n" + close) >= 0


def is_multipart(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


def parse_multipart(body: bytes, content_type: str) -> MultipartForm:
    """Split a form into text fields and files. Malformed bodies raise ``InvalidRequestError``."""
    if not is_multipart(content_type):
        raise InvalidRequestError("expected a multipart/form-data body with a 'file' field")
    if "boundary=" not in content_type:
        raise InvalidRequestError("multipart/form-data content type has no boundary")
    # Imported here: requests-toolbelt brings `requests` along (~60 ms), which routes without forms never need.
    from requests_toolbelt.multipart.decoder import (
        ImproperBodyPartContentException,
        MultipartDecoder,
        NonMultipartContentTypeException,
    )

    boundary = _boundary(content_type)
    if not boundary:
        raise InvalidRequestError("multipart/form-data content type has an empty boundary")
    if not _is_closed(body, boundary):
        # A client cut off mid-upload sends a form without its closing delimiter: nothing of it is processed.
        raise InvalidRequestError("the multipart body is incomplete: it ends without its closing boundary")
    try:
        decoder = MultipartDecoder(body, content_type)
    except (ImproperBodyPartContentException, NonMultipartContentTypeException, ValueError, IndexError) as exc:
        raise InvalidRequestError(f"malformed multipart body: {exc}") from exc
    form = MultipartForm()
    for part in decoder.parts:
        raw_disposition = part.headers.get(b"Content-Disposition", b"").decode("utf-8", "replace")
        name, filename = _disposition(raw_disposition)
        if not name:
            raise InvalidRequestError("a multipart part has no form-data name")
        if filename is not None:
            if name in form.files:
                raise InvalidRequestError(f"more than one file in field {name!r}", param=name)
            part_type = part.headers.get(b"Content-Type", b"application/octet-stream").decode("latin-1")
            form.files[name] = UploadedFile(filename=filename, content_type=part_type, data=part.content)
        else:
            try:
                text = part.content.decode(part.encoding or "utf-8")
            except (UnicodeDecodeError, LookupError) as exc:
                raise InvalidRequestError(f"field {name!r} is not valid text", param=name) from exc
            form.fields.setdefault(name, []).append(text)
    return form
