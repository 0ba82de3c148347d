"""Multipart forms into pydantic models: size checks first, then parsing, then validation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar
from urllib.parse import parse_qsl

from pydantic import BaseModel

from earshot.errors import InvalidRequestError
from earshot.http.controls import CONTROL_FIELDS
from earshot.http.multipart import MultipartForm, is_multipart, parse_multipart, parse_multipart_stream
from earshot.http.request import ApiRequest
from earshot.http.validation import parse_model
from earshot.services.audio_input import check_inline_size, staging_file, too_large
from earshot.uploaded import StagedUpload

FormT = TypeVar("FormT", bound=BaseModel)

# Room for the multipart framing and text fields around the file itself.
FORM_OVERHEAD = 256 * 1024


@dataclass(frozen=True)
class ParsedForm(Generic[FormT]):
    form: FormT
    filename: str
    controls: dict[str, str]


def is_urlencoded(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded"


def parse_urlencoded(body: bytes) -> MultipartForm:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError("malformed application/x-www-form-urlencoded body") from exc
    form = MultipartForm()
    for name, value in pairs:
        form.fields.setdefault(name, []).append(value)
    return form


def read_form(
    request: ApiRequest,
    model: type[FormT],
    *,
    limit: int,
    list_fields: dict[str, str] | None = None,
    file_required: bool = True,
) -> ParsedForm[FormT]:
    """Parse ``request`` as multipart into ``model``; the audio goes in the ``file`` field.

    ``list_fields`` maps repeatable wire names (``timestamp_granularities[]``) to the model's alias.
    """
    if is_urlencoded(request.content_type) and not file_required:
        form = parse_urlencoded(request.body_bytes())  # url / file_id requests carry no file
    elif not is_multipart(request.content_type):
        raise InvalidRequestError("send the audio as multipart/form-data with a 'file' field")
    elif (stream := request.body_stream) is not None:
        # The body as it arrives (local server): the file part is copied once, and refused once past the limit.
        if stream.length is not None:
            check_inline_size(max(0, stream.length - FORM_OVERHEAD), limit)
        request.body_stream = None
        staged: list[Path] | None = getattr(stream, "staged", None)  # the reader deletes them when the answer is sent
        spooled: dict[str, Path] = {}

        def spool(name: str, filename: str) -> BinaryIO:
            assert staged is not None
            path = staging_file(filename)
            staged.append(path)
            spooled[name] = path
            return path.open("wb")

        form = parse_multipart_stream(
            stream.read,
            request.content_type,
            file_limit=lambda size: too_large(size, limit) if size > limit else None,
            spool=spool if staged is not None else None,
        )
        for part in form.files.values():
            if part.spooled is not None:
                part.spooled.close()  # written whole: metering and the engine read it in place
    else:
        check_inline_size(max(0, len(request.body) - FORM_OVERHEAD), limit)
        form = parse_multipart(request.body, request.content_type)
    upload = form.files.get("file")
    if "file" in form.fields:
        raise InvalidRequestError("'file' must be a file upload (with a filename), not a text field", param="file")
    if upload is None and file_required:
        raise InvalidRequestError("missing the 'file' field (the audio)", param="file")
    extra_files = sorted(set(form.files) - {"file"})
    if extra_files:
        raise InvalidRequestError(f"unexpected file field {extra_files[0]!r}", param=extra_files[0])
    data: dict[str, Any] = {}
    controls: dict[str, str] = {}
    if upload is not None and upload.spooled is not None:
        check_inline_size(upload.size, limit)
        data["file"] = StagedUpload(spooled["file"], upload.size)
    elif upload is not None:
        check_inline_size(len(upload.data), limit)
        data["file"] = upload.data
    for name, values in form.fields.items():
        if name in CONTROL_FIELDS:
            controls[name] = values[-1]
        elif list_fields and name in list_fields:
            data[list_fields[name]] = values
        elif len(values) > 1:
            raise InvalidRequestError(f"field {name!r} was sent more than once", param=name)
        else:
            data[name] = values[0]
    parsed = parse_model(model, data)
    request.body = b""  # the audio now lives in the form; drop the request's copy early
    return ParsedForm(form=parsed, filename=upload.filename if upload else "", controls=controls)
