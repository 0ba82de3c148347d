"""The layer build: what goes in, what is pruned, and how function sizes are counted (no pip, no network)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from infra_synth import REPO_ROOT

from infra import build_layers
from infra.constants import LAMBDA_UNZIPPED_LIMIT_BYTES


def test_layer_requirements_are_the_pinned_runtime_dependencies() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements = build_layers.runtime_requirements()
    assert requirements == project["dependencies"]
    assert all("==" in requirement for requirement in requirements)


def test_pruning_keeps_code_and_drops_what_the_runtime_never_reads(tmp_path: Path) -> None:
    python = tmp_path / "python"
    (python / "pkg" / "tests").mkdir(parents=True)
    (python / "pkg" / "__pycache__").mkdir()
    (python / "bin").mkdir()
    (python / "pkg" / "__init__.py").write_text("")
    (python / "pkg" / "_native.so").write_bytes(b"\x7fELF")
    (python / "pkg" / "stubs.pyi").write_text("")
    (python / "pkg" / "tests" / "test_pkg.py").write_text("")
    (python / "pkg" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")
    (python / "bin" / "tool").write_text("#!/usr/bin/python3.11\n")

    build_layers._prune(python)

    remaining = sorted(str(p.relative_to(python)) for p in python.rglob("*"))
    assert remaining == ["pkg", "pkg/__init__.py", "pkg/_native.so"]


def test_function_sizes_count_code_plus_every_layer(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "blob").write_bytes(b"x" * 1000)
    functions = tmp_path / "functions"
    (functions / "small").mkdir(parents=True)
    (functions / "small" / "handler.py").write_bytes(b"y" * 10)
    (functions / "not-a-function").mkdir()

    sizes = build_layers.function_sizes([layer, layer], functions_dir=functions)

    assert sizes == {"small": 2010}
    assert sizes["small"] < LAMBDA_UNZIPPED_LIMIT_BYTES


def test_ffprobe_layer_places_an_executable_at_bin_ffprobe(tmp_path: Path) -> None:
    binary = tmp_path / "ffprobe-src"
    binary.write_text("#!/bin/sh\n")
    root = build_layers.build_ffprobe_layer(tmp_path / "layer", binary=binary)
    target = root / "bin" / "ffprobe"
    assert target.read_text() == "#!/bin/sh\n"
    assert target.stat().st_mode & 0o111 == 0o111
