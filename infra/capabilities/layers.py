"""The two Lambda layers: ``core`` (the earshot package and its dependencies) and ``ffprobe``.

Their contents are built by ``infra/build_layers.py`` (``make layers``) into directories passed in here, so tests
can synthesize against small stub directories without downloading any wheel.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

RUNTIME = lambda_.Runtime.PYTHON_3_13
RUNTIME_CHOICE = (
    "python3.13, not the newest python3.14: the layer is built from cp313 wheels, and pocketsphinx 5.1.1 (the "
    "embedded engine) publishes no cp314 wheel. Move both together when it does."
)
ARCHITECTURE = lambda_.Architecture.X86_64  # the static ffprobe and the layer's wheels are x86_64 builds


class Layers(Construct):
    """``core`` mounts ``python/`` at /opt/python (on sys.path); ``ffprobe`` mounts ``bin/ffprobe`` at /opt/bin."""

    def __init__(self, scope: Construct, construct_id: str, *, core_asset_dir: Path, ffprobe_asset_dir: Path) -> None:
        super().__init__(scope, construct_id)
        _require(core_asset_dir / "python" / "earshot" / "__init__.py", "the core layer")
        _require(ffprobe_asset_dir / "bin" / "ffprobe", "the ffprobe layer")
        self.core = lambda_.LayerVersion(
            self,
            "Core",
            code=lambda_.Code.from_asset(str(core_asset_dir)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="earshot package and its pinned runtime dependencies",
        )
        self.ffprobe = lambda_.LayerVersion(
            self,
            "Ffprobe",
            code=lambda_.Code.from_asset(str(ffprobe_asset_dir)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="static ffprobe at /opt/bin/ffprobe, for duration metering",
        )

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        return [self.core, self.ffprobe]


def _require(path: Path, what: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing, so {what} cannot be packaged: run `make layers` first")
