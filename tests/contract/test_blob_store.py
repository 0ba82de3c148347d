"""The ``BlobStore`` contract: what a caller of either adapter (files, S3) can rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from earshot.errors import NotFoundError
from earshot.ports import BlobStore


def test_a_stored_blob_reads_back_byte_for_byte(blob_store: BlobStore) -> None:
    audio = bytes(range(256)) * 64

    blob_store.put("uploads/acct_1/file_1.wav", audio, content_type="audio/wav")

    assert blob_store.exists("uploads/acct_1/file_1.wav")
    assert blob_store.get("uploads/acct_1/file_1.wav") == audio


def test_a_missing_blob_is_not_found(blob_store: BlobStore) -> None:
    assert blob_store.exists("uploads/nothing.wav") is False
    with pytest.raises(NotFoundError):
        blob_store.get("uploads/nothing.wav")


def test_a_put_replaces_the_previous_blob(blob_store: BlobStore) -> None:
    blob_store.put("results/task_1.json", b'{"v": 1}', content_type="application/json")
    blob_store.put("results/task_1.json", b'{"v": 2}', content_type="application/json")

    assert blob_store.get("results/task_1.json") == b'{"v": 2}'


def test_nested_keys_are_independent(blob_store: BlobStore) -> None:
    blob_store.put("a/b/c.bin", b"deep")
    blob_store.put("a/b.bin", b"shallow")

    blob_store.delete("a/b/c.bin")

    assert blob_store.exists("a/b/c.bin") is False
    assert blob_store.get("a/b.bin") == b"shallow"


def test_a_deleted_blob_is_gone_and_deleting_again_is_fine(blob_store: BlobStore) -> None:
    blob_store.put("uploads/file_2.mp3", b"ID3")

    blob_store.delete("uploads/file_2.mp3")
    blob_store.delete("uploads/file_2.mp3")

    assert blob_store.exists("uploads/file_2.mp3") is False
    with pytest.raises(NotFoundError):
        blob_store.get("uploads/file_2.mp3")


def test_an_empty_blob_is_still_a_blob(blob_store: BlobStore) -> None:
    blob_store.put("uploads/empty", b"")

    assert blob_store.exists("uploads/empty")
    assert blob_store.get("uploads/empty") == b""


def test_a_blob_downloads_to_a_file_byte_for_byte(blob_store: BlobStore, tmp_path: Path) -> None:
    # Big uploads reach ffprobe and the engines this way: streamed to /tmp, never whole in memory.
    audio = bytes(range(256)) * 40_000  # 10 MB, several S3 download parts
    blob_store.put("inbox/acct_1/file_3/big.wav", audio)

    target = tmp_path / "big.wav"
    blob_store.download("inbox/acct_1/file_3/big.wav", target)

    assert target.read_bytes() == audio
    with pytest.raises(NotFoundError):
        blob_store.download("inbox/nothing.wav", tmp_path / "nothing.wav")
