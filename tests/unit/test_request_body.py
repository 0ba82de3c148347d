"""The two ways a body reaches a function: base64 in the API Gateway event (deployed), or beside it as a stream
(the local server's fast path for multipart uploads). Both give the handler the same form."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import pytest
from pydantic import BaseModel, ConfigDict

from earshot.errors import FileTooLargeError
from earshot.http.forms import read_form
from earshot.http.request import ApiRequest

CT = "multipart/form-data; boundary=B"
BODY = (
    b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\ntranscribe\r\n'
    b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    + bytes(range(256)) * 5000
    + b"\r\n--B--\r\n"
)


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    file: bytes


@dataclass
class _Stream:
    data: io.BytesIO
    length: int | None

    def read(self, size: int, /) -> bytes:
        return self.data.read(size)


@dataclass
class _Context:
    request_body: _Stream | None = None


def _event(body: bytes | None, content_type: str = CT) -> dict[str, object]:
    event: dict[str, object] = {
        "rawPath": "/v1/audio/transcriptions",
        "headers": {"content-type": content_type},
        "requestContext": {"http": {"method": "POST"}, "requestId": "r1"},
    }
    if body is not None:
        event.update(body=base64.b64encode(body).decode(), isBase64Encoded=True)
    return event


def test_the_event_body_and_the_streamed_body_give_the_same_form() -> None:
    deployed = ApiRequest.from_event(_event(BODY))
    local = ApiRequest.from_event(_event(None), _Context(_Stream(io.BytesIO(BODY), len(BODY))))
    assert local.body == b"" and local.body_stream is not None  # nothing read before the form asks
    one = read_form(deployed, _Form, limit=10_000_000)
    two = read_form(local, _Form, limit=10_000_000)
    assert one.form == two.form and one.filename == two.filename == "a.wav"
    assert two.form.file == bytes(range(256)) * 5000


@pytest.mark.parametrize("length", [len(BODY), None])  # Content-Length, or chunked
def test_a_streamed_file_past_the_limit_is_refused(length: int | None) -> None:
    local = ApiRequest.from_event(_event(None), _Context(_Stream(io.BytesIO(BODY), length)))
    with pytest.raises(FileTooLargeError):
        read_form(local, _Form, limit=100_000)


def test_a_streamed_json_body_is_read_whole_as_before() -> None:
    payload = b'{"a": 1}'
    local = ApiRequest.from_event(
        _event(None, "application/json"), _Context(_Stream(io.BytesIO(payload), len(payload)))
    )
    assert local.body == payload and local.body_stream is None
    assert local.body_bytes() == payload


def test_the_local_servers_reader_streams_the_file_part_to_disk_and_deletes_it_after() -> None:
    """With the local server's reader, the file part goes straight into a private temp file (no copy in memory),
    metering and the engines read it in place, and the reader deletes it once the answer is sent."""
    from earshot.local.server import RequestBody
    from earshot.schemas import V2TranscribeForm
    from earshot.services.audio_input import staged_audio
    from earshot.uploaded import StagedUpload

    reader = RequestBody(io.BytesIO(BODY), len(BODY), 10_000_000)
    local = ApiRequest.from_event(_event(None), _Context(reader))  # type: ignore[arg-type]
    parsed = read_form(local, V2TranscribeForm, limit=10_000_000)
    upload = parsed.form.file
    assert isinstance(upload, StagedUpload) and parsed.filename == "a.wav"
    assert len(upload) == 256 * 5000 and reader.staged == [upload.path]
    assert upload.path.suffix == ".wav" and upload.read_bytes() == bytes(range(256)) * 5000
    with staged_audio(upload, parsed.filename) as path:
        assert path == upload.path  # used in place, not written again
    assert upload.path.exists()  # deleted after the answer is sent, not on the answer's path
    reader.discard_staged()
    assert not upload.path.exists()


def test_a_streamed_file_past_the_limit_leaves_nothing_on_disk() -> None:
    from earshot.local.server import RequestBody

    reader = RequestBody(io.BytesIO(BODY), len(BODY), 10_000_000)
    local = ApiRequest.from_event(_event(None), _Context(reader))  # type: ignore[arg-type]
    with pytest.raises(FileTooLargeError):  # past the declared-length check, refused while streaming
        read_form(local, _Form, limit=len(BODY) - 256 * 1024)
    assert len(reader.staged) == 1
    reader.discard_staged()
    assert not reader.staged[0].exists()
