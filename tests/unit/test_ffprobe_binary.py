"""The compressed ffprobe of the Lambda layer is unpacked once, whole and verified, and runs."""

from __future__ import annotations

import functools
import gzip
import subprocess
import threading
from pathlib import Path

import pytest

from earshot.ffprobe_binary import digest_record_path, unpack_ffprobe, write_digest_record

FAKE_FFPROBE = b"#!/bin/sh\necho 'ffprobe version fake'\n" + b"# padding\n" * 50_000  # ~0.5 MB, several chunks


def _layer(tmp_path: Path, content: bytes = FAKE_FFPROBE) -> Path:
    """A layer's ``bin/``: ``ffprobe.gz`` and its digest record, built as ``infra/build_layers.py`` does."""
    binary = tmp_path / "src" / "ffprobe"
    binary.parent.mkdir(parents=True)
    binary.write_bytes(content)
    gz = tmp_path / "bin" / "ffprobe.gz"
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(content))
    write_digest_record(binary, gz)
    return gz


def _leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if path.name.endswith(".part"))


def test_unpacks_an_executable_that_runs(tmp_path: Path) -> None:
    gz = _layer(tmp_path)

    binary = unpack_ffprobe(gz, target_dir=tmp_path / "tmp")

    assert binary.read_bytes() == FAKE_FFPROBE
    assert binary.stat().st_mode & 0o777 == 0o755
    assert subprocess.run([binary], capture_output=True, text=True, check=True).stdout == "ffprobe version fake\n"
    assert _leftovers(binary.parent) == []


def test_concurrent_first_calls_unpack_once_and_agree(tmp_path: Path) -> None:
    gz = _layer(tmp_path)
    target_dir = tmp_path / "tmp"
    start = threading.Barrier(2)
    results: list[Path] = []

    def call() -> None:
        start.wait()
        results.append(unpack_ffprobe(gz, target_dir=target_dir))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 2 and results[0] == results[1]
    assert results[0].read_bytes() == FAKE_FFPROBE
    assert sorted(p.name for p in target_dir.iterdir()) == [results[0].name]  # one binary, no temporary files


def test_a_later_call_reuses_the_unpacked_binary(tmp_path: Path) -> None:
    gz = _layer(tmp_path)
    first = unpack_ffprobe(gz, target_dir=tmp_path / "tmp")
    before = first.stat()

    second = unpack_ffprobe(gz, target_dir=tmp_path / "tmp")

    after = second.stat()
    assert second == first
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_new_layer_binary_gets_a_new_name(tmp_path: Path) -> None:
    old = unpack_ffprobe(_layer(tmp_path / "old"), target_dir=tmp_path / "tmp")
    new = unpack_ffprobe(_layer(tmp_path / "new", FAKE_FFPROBE + b"# v2\n"), target_dir=tmp_path / "tmp")
    assert new != old
    assert new.read_bytes().endswith(b"# v2\n")


def test_a_checksum_mismatch_fails_clearly_and_leaves_nothing_runnable(tmp_path: Path) -> None:
    gz = _layer(tmp_path)
    digest_record_path(gz).write_text(f"sha256={'0' * 64} size={len(FAKE_FFPROBE)}\n")
    target_dir = tmp_path / "tmp"

    with pytest.raises(RuntimeError, match=r"ffprobe layer is corrupt.*make layers"):
        unpack_ffprobe(gz, target_dir=target_dir)

    assert list(target_dir.iterdir()) == []


def test_a_size_mismatch_fails_clearly(tmp_path: Path) -> None:
    gz = _layer(tmp_path)
    record = digest_record_path(gz)
    record.write_text(record.read_text().replace(f"size={len(FAKE_FFPROBE)}", f"size={len(FAKE_FFPROBE) + 1}"))

    with pytest.raises(RuntimeError, match=rf"holds {len(FAKE_FFPROBE)} bytes.*records {len(FAKE_FFPROBE) + 1}"):
        unpack_ffprobe(gz, target_dir=tmp_path / "tmp")


def test_a_truncated_archive_fails_clearly(tmp_path: Path) -> None:
    gz = _layer(tmp_path)
    gz.write_bytes(gz.read_bytes()[:1000])
    target_dir = tmp_path / "tmp"

    with pytest.raises(RuntimeError, match="cannot unpack"):
        unpack_ffprobe(gz, target_dir=target_dir)

    assert list(target_dir.iterdir()) == []


@pytest.mark.parametrize("record", [None, "", "sha256=abc size=10\n", "size=10\n", "sha256=" + "a" * 64 + " size=x\n"])
def test_a_missing_or_malformed_record_fails_clearly(tmp_path: Path, record: str | None) -> None:
    gz = _layer(tmp_path)
    if record is None:
        digest_record_path(gz).unlink()
    else:
        digest_record_path(gz).write_text(record)

    with pytest.raises(RuntimeError, match=r"ffprobe\.sha256 is (missing|malformed)"):
        unpack_ffprobe(gz, target_dir=tmp_path / "tmp")


def test_settings_find_the_layers_compressed_ffprobe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In an audio function the layer mounts only /opt/bin/ffprobe.gz: the lookup unpacks it (here to tmp_path)."""
    from earshot import config, ffprobe_binary

    gz = _layer(tmp_path)
    monkeypatch.setattr(config, "_LAYER_FFPROBE", tmp_path / "absent" / "ffprobe")
    monkeypatch.setattr(ffprobe_binary, "LAYER_FFPROBE_GZ", gz)
    monkeypatch.setattr(
        ffprobe_binary, "unpack_ffprobe", functools.partial(unpack_ffprobe, target_dir=tmp_path / "tmp")
    )

    found = config.Settings(ffprobe=None).resolved_ffprobe()

    assert found.parent == tmp_path / "tmp"
    assert found.read_bytes() == FAKE_FFPROBE
