"""``multipart_request``: the upstream upload's form, its file streamed in large pieces with an exact length."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from earshot.engines.providers.upload import multipart_request
from earshot.http.multipart import parse_multipart


def _sent_lazily(request: httpx.Request) -> Iterator[bytes]:
    stream = request.stream
    assert isinstance(stream, httpx.SyncByteStream)
    return iter(stream)


def _sent(request: httpx.Request) -> list[bytes]:
    return list(_sent_lazily(request))


def _wav_upload(file: Any, **options: Any) -> httpx.Request:
    """A bare upload of ``file`` as ``a.wav``: no headers, no other fields."""
    return multipart_request(
        "http://u.test/",
        headers={},
        fields={},
        file_field="file",
        filename="a.wav",
        file=file,
        content_type="audio/wav",
        **options,
    )


def test_the_form_parses_back_to_its_fields_and_file(tmp_path: Path) -> None:
    audio = tmp_path / "a.mp3"
    audio.write_bytes(bytes(range(256)) * 9000)  # 2.2 MiB: three pieces
    with audio.open("rb") as handle:
        request = multipart_request(
            "http://upstream.test/v1/audio/transcriptions",
            headers={"authorization": "Bearer k"},
            fields={"model": "whisper-1", "prompt": 'a "quoted" prompt\r\nover two lines', "t[]": ["a", "b"]},
            file_field="file",
            filename="audio.mp3",
            file=handle,
            content_type="audio/mpeg",
        )
        pieces = _sent(request)
    body = b"".join(pieces)
    assert request.headers["content-length"] == str(len(body))
    assert "transfer-encoding" not in request.headers and request.headers["authorization"] == "Bearer k"
    form = parse_multipart(body, request.headers["content-type"])
    assert form.fields == {"model": ["whisper-1"], "prompt": ['a "quoted" prompt\r\nover two lines'], "t[]": ["a", "b"]}
    upload = form.files["file"]
    assert upload.filename == "audio.mp3" and upload.content_type == "audio/mpeg"
    assert upload.data == audio.read_bytes()
    assert max(len(piece) for piece in pieces) == 1024 * 1024  # 1 MiB pieces, not httpx's 64 kB


def test_each_attempt_sends_the_whole_file_again() -> None:
    handle = io.BytesIO(b"x" * 3000)

    first, second = b"".join(_sent(_wav_upload(handle))), b"".join(_sent(_wav_upload(handle)))
    assert first.count(b"x" * 3000) == second.count(b"x" * 3000) == 1
    assert len(first) == len(second)


def test_a_file_that_shrinks_while_sent_is_never_sent_short(tmp_path: Path) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"y" * 5000)
    with audio.open("rb") as handle:
        request = _wav_upload(handle, piece_bytes=1000)
        stream = iter(_sent_lazily(request))
        next(stream)  # the head
        next(stream)  # the first 1000 bytes
        audio.write_bytes(b"y" * 2000)  # truncated under the sender
        with pytest.raises(OSError, match="changed size"):
            list(stream)
