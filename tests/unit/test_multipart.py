"""The multipart parser: fields, files, and malformed bodies as 400s."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from earshot.errors import FileTooLargeError, InvalidRequestError
from earshot.http.multipart import parse_multipart, parse_multipart_stream

CT = "multipart/form-data; boundary=XyZ"


def _part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--XyZ\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


def test_fields_and_a_file_are_separated() -> None:
    body = _part("model", b"transcribe") + _part("file", b"\x00\x01binary", "a.mp3") + b"--XyZ--\r\n"
    form = parse_multipart(body, CT)
    assert form.first("model") == "transcribe"
    assert form.files["file"].data == b"\x00\x01binary"
    assert form.files["file"].filename == "a.mp3"


def test_repeated_fields_are_kept_in_order() -> None:
    body = _part("g[]", b"word") + _part("g[]", b"segment") + b"--XyZ--\r\n"
    assert parse_multipart(body, CT).fields["g[]"] == ["word", "segment"]


def test_unicode_filenames_survive() -> None:
    body = (
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''r%C3%A9union.mp3\r\n\r\nX\r\n"
        b"--XyZ--\r\n"
    )
    assert parse_multipart(body, CT).files["file"].filename == "réunion.mp3"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"x", "application/json"),
        (b"x", "multipart/form-data"),
        (b"--XyZ\r\nno blank line", CT),
        (b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nvalue\r\n--XyZ--\r\n", CT),
        (_part("file", b"a", "a.wav") + _part("file", b"b", "b.wav") + b"--XyZ--\r\n", CT),
        (_part("model", b"\xff\xfe\xfa") + b"--XyZ--\r\n", CT),
    ],
)
def test_malformed_bodies_are_invalid_requests(body: bytes, content_type: str) -> None:
    with pytest.raises(InvalidRequestError):
        parse_multipart(body, content_type)


def test_a_preamble_transport_padding_and_a_part_content_type_charset_are_honoured() -> None:
    body = (
        b'preamble to ignore\r\n--XyZ  \r\nContent-Disposition: form-data; name="prompt"\r\n'
        b"Content-Type: text/plain; charset=latin-1\r\n\r\ncaf\xe9\r\n--XyZ--\r\nepilogue"
    )
    assert parse_multipart(body, CT).first("prompt") == "café"


def test_a_file_keeps_bytes_that_look_like_delimiters() -> None:
    data = b"--XyZ-- not at a line start\r\n-XyZ\r\n\r\n"
    body = _part("file", data, "a.bin") + b"--XyZ--"
    assert parse_multipart(body, CT).files["file"].data == data


@pytest.mark.parametrize(
    "body",
    [
        _part("file", b"half of the audio", "a.wav"),  # cut off before the close delimiter
        _part("file", b"audio", "a.wav") + b"--XyZ",  # a delimiter that never closes
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\naudio',
    ],
)
def test_a_form_without_its_close_delimiter_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidRequestError, match="closing boundary"):
        parse_multipart(body, CT)


def _trickle(body: bytes, size: int) -> Callable[[int], bytes]:
    """A reader that hands out at most ``size`` bytes per call, as a socket does."""
    stream = io.BytesIO(body)
    return lambda wanted: stream.read(min(wanted, size))


@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
def test_a_streamed_form_is_split_exactly_whatever_the_piece_size(piece: int) -> None:
    data = bytes(range(256)) * 9000 + b"\r\n--XyY\r\n-XyZ\r\n--Xy"  # 2.3 MB, delimiter-like bytes inside
    body = _part("model", b"transcribe") + _part("file", data, "a.mp3") + _part("language", b"en") + b"--XyZ--\r\n"
    if piece == 1:
        body = _part("file", data[:3000], "a.mp3") + b"--XyZ--"
        data = data[:3000]
    form = parse_multipart_stream(_trickle(body, piece), CT)
    assert form.files["file"].data == data
    if piece > 1:
        assert form.first("model") == "transcribe" and form.first("language") == "en"


def test_a_file_part_past_the_limit_stops_the_read() -> None:
    body = _part("file", b"a" * (5 << 20), "a.wav") + b"--XyZ--\r\n"
    stream = io.BytesIO(body)
    limit = FileTooLargeError("too large", param="file")
    with pytest.raises(FileTooLargeError):
        parse_multipart_stream(stream.read, CT, file_limit=lambda size: limit if size > (1 << 20) else None)
    assert stream.tell() < 3 << 20  # refused after the limit, not after the whole body


def test_a_spooled_file_part_goes_to_its_file_as_it_arrives() -> None:
    """``spool``: the file part is written to the file it opens (in pieces), never held in the form."""
    data = bytes(range(256)) * 9000  # 2.3 MB: several reads, delimiter candidates straddling pieces
    body = _part("model", b"whisper-1") + _part("file", data, "a.mp3") + b"--XyZ--\r\n"
    sinks: list[io.BytesIO] = []

    def spool(name: str, filename: str) -> io.BytesIO:
        assert (name, filename) == ("file", "a.mp3")
        sinks.append(io.BytesIO())
        return sinks[-1]

    form = parse_multipart_stream(_trickle(body, 70_000), CT, spool=spool)
    upload = form.files["file"]
    assert upload.data == b"" and upload.size == len(data) and upload.spooled is sinks[0]
    assert sinks[0].getvalue() == data and form.first("model") == "whisper-1"


def test_a_spooled_part_past_the_limit_is_closed_and_refused() -> None:
    body = _part("file", b"x" * (3 << 20), "a.mp3") + b"--XyZ--\r\n"
    sinks: list[io.BytesIO] = []

    def spool(_name: str, _filename: str) -> io.BytesIO:
        sinks.append(io.BytesIO())
        return sinks[-1]

    limit = InvalidRequestError("too big")
    with pytest.raises(InvalidRequestError, match="too big"):
        parse_multipart_stream(
            io.BytesIO(body).read, CT, file_limit=lambda n: limit if n > (1 << 20) else None, spool=spool
        )
    assert sinks and sinks[0].closed


def test_a_form_parsed_after_another_on_the_same_thread_sees_nothing_of_it() -> None:
    """The parsing window is reused form after form: a cut-off form is still refused although the window still
    holds the previous form's closing delimiter beyond what the new one sent."""
    whole = _part("file", b"A" * 300_000, "a.mp3") + _part("model", b"whisper-1") + b"--XyZ--\r\n"
    assert parse_multipart(whole, CT).files["file"].data == b"A" * 300_000

    with pytest.raises(InvalidRequestError, match="incomplete"):
        parse_multipart(whole[: len(whole) - 40], CT)
    shorter = _part("file", b"B" * 10, "b.mp3") + b"--XyZ--\r\n"
    form = parse_multipart(shorter, CT)
    assert form.files["file"].data == b"B" * 10 and not form.fields
