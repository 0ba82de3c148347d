"""Build the two Lambda layers into ``build/layers/`` without Docker.

* ``core``: the ``earshot`` package and its pinned runtime dependencies (``pyproject.toml``), as wheels for the
  Lambda platform (``pip install --platform ... --only-binary=:all: --target``), plus pocketsphinx with
  ``--no-deps``. Files the runtime never reads (tests, type stubs, bytecode compiled for this machine's Python,
  console scripts) are left out: every megabyte counts against Lambda's 250 MB unzipped limit.
* ``ffprobe``: the pinned static ffprobe (``make setup``) at ``bin/ffprobe``, mounted at ``/opt/bin/ffprobe``.

Run ``make layers`` (or ``python infra/build_layers.py``). It prints each layer's size and, per function, the
unzipped total Lambda checks against its limit; ``--strict`` fails when a function is over it.
"""

from __future__ import annotations

import argparse
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from infra.constants import (
    CORE_LAYER_DIR,
    CORE_PACKAGE_DIR,
    FFPROBE_BINARY,
    FFPROBE_LAYER_DIR,
    FUNCTIONS_DIR,
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    LAYER_PLATFORMS,
    LAYER_PYTHON_VERSION,
    POCKETSPHINX_REQUIREMENT,
    PYPROJECT,
)

MB = 1_000_000
# Never read at run time. Directory names are matched anywhere under python/; the numpy test suites alone are
# ~17 MB. Bytecode is dropped because pip compiled it for the Python running this script, not for 3.13.
_PRUNED_DIRS = frozenset({"__pycache__", "tests"})
_PRUNED_SUFFIXES = (".pyc", ".pyi", ".pxd", ".pyx")
_PRUNED_TOP_LEVEL = ("bin",)  # console scripts with this machine's interpreter in their shebang


def runtime_requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """The pinned runtime dependencies, exactly as ``pyproject.toml`` lists them."""
    with pyproject.open("rb") as handle:
        return list(tomllib.load(handle)["project"]["dependencies"])


def _pip_install(target: Path, requirements: Sequence[str], *, no_deps: bool = False) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for platform in LAYER_PLATFORMS:
        command += ["--platform", platform]
    command += ["--python-version", LAYER_PYTHON_VERSION, "--implementation", "cp", "--only-binary=:all:"]
    command += ["--upgrade", "--target", str(target)]
    if no_deps:
        command.append("--no-deps")
    subprocess.run([*command, *requirements], check=True)


def _prune(python_dir: Path) -> None:
    for name in _PRUNED_TOP_LEVEL:
        shutil.rmtree(python_dir / name, ignore_errors=True)
    for path in sorted(python_dir.rglob("*"), reverse=True):  # children before their directories
        if path.is_dir() and path.name in _PRUNED_DIRS:
            shutil.rmtree(path)
        elif path.is_file() and path.suffix in _PRUNED_SUFFIXES:
            path.unlink()


def build_core_layer(root: Path = CORE_LAYER_DIR) -> Path:
    """Populate ``root/python`` with the earshot package and its dependencies for the Lambda runtime."""
    shutil.rmtree(root, ignore_errors=True)
    python_dir = root / "python"
    python_dir.mkdir(parents=True)
    _pip_install(python_dir, runtime_requirements())
    _pip_install(python_dir, [POCKETSPHINX_REQUIREMENT], no_deps=True)
    shutil.copytree(CORE_PACKAGE_DIR, python_dir / "earshot", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _prune(python_dir)
    return root


def build_ffprobe_layer(root: Path = FFPROBE_LAYER_DIR, binary: Path = FFPROBE_BINARY) -> Path:
    """Place the static ffprobe at ``root/bin/ffprobe`` (``/opt/bin/ffprobe`` in the function)."""
    if not binary.is_file():
        raise SystemExit(f"{binary} is missing: run `make setup` first")
    shutil.rmtree(root, ignore_errors=True)
    (root / "bin").mkdir(parents=True)
    target = root / "bin" / "ffprobe"
    shutil.copy2(binary, target)
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return root


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path``: what Lambda counts as unzipped size."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def function_sizes(layer_dirs: Iterable[Path], functions_dir: Path = FUNCTIONS_DIR) -> dict[str, int]:
    """Unzipped bytes per function: its code plus every layer (each function gets both layers)."""
    layers = sum(tree_size(layer) for layer in layer_dirs)
    return {fn.name: layers + tree_size(fn) for fn in sorted(functions_dir.iterdir()) if (fn / "handler.py").is_file()}


def report(layer_dirs: Sequence[Path]) -> bool:
    """Print the sizes; True when every function fits Lambda's unzipped limit."""
    for layer in layer_dirs:
        print(f"layer {layer.name:<10} {tree_size(layer) / MB:8.1f} MB  ({layer})")
    fits = True
    for name, size in function_sizes(layer_dirs).items():
        over = size > LAMBDA_UNZIPPED_LIMIT_BYTES
        fits = fits and not over
        verdict = "OVER Lambda's limit" if over else "fits"
        print(f"function {name:<16} {size / MB:8.1f} MB of {LAMBDA_UNZIPPED_LIMIT_BYTES / MB:.1f} MB: {verdict}")
    return fits


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--strict", action="store_true", help="fail when a function exceeds Lambda's size limit")
    args = parser.parse_args(argv)
    layers = [build_core_layer(), build_ffprobe_layer()]
    fits = report(layers)
    if not fits:
        print(
            "WARNING: a function is larger than Lambda accepts (code + layers, unzipped); deploying it will fail. "
            "See docs/cost.md, 'Package size'.",
            file=sys.stderr,
        )
    return 0 if fits or not args.strict else 1


if __name__ == "__main__":
    raise SystemExit(main())
