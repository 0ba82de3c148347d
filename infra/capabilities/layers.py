"""The three Lambda layers: ``core`` (earshot and its light dependencies), ``audio`` (PyAV, numpy)
and ``ffprobe`` (gzip-compressed, unpacked to /tmp on first use by ``earshot.ffprobe_binary``).

Every function gets ``core``; only the functions in ``infra.constants.AUDIO_FUNCTIONS`` get the other two
(``layers_for``). Their contents are built by ``infra/build_layers.py`` (``make layers``) into directories passed
in here, so tests can synthesize against small stub directories without downloading any wheel.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.constants import AUDIO_LAYER, AUDIO_LAYER_MODULES, CORE_LAYER, FFPROBE_LAYER, layers_for

RUNTIME = lambda_.Runtime.PYTHON_3_13
RUNTIME_CHOICE = (
    "python3.13, not the newest python3.14: the layers are built from cp313 wheels, and the speech runtime "
    "(ctranslate2 4.8.5, onnxruntime 1.31.1) was checked on cp313 wheels for the inference image. Move together."
)
ARCHITECTURE = lambda_.Architecture.X86_64  # the static ffprobe and the layer's wheels are x86_64 builds


class Layers(Construct):
    """``core`` and ``audio`` mount ``python/`` at /opt/python (on sys.path); ``ffprobe`` mounts ``bin/`` at
    /opt/bin."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        core_asset_dir: Path,
        audio_asset_dir: Path,
        ffprobe_asset_dir: Path,
    ) -> None:
        super().__init__(scope, construct_id)
        _require(core_asset_dir / "python" / "earshot" / "__init__.py", "the core layer")
        for module in AUDIO_LAYER_MODULES:
            _require_dir(audio_asset_dir / "python" / module, "the audio layer")
        _require(ffprobe_asset_dir / "bin" / "ffprobe.gz", "the ffprobe layer")
        _require(ffprobe_asset_dir / "bin" / "ffprobe.sha256", "the ffprobe layer")
        self.core = self._layer("Core", core_asset_dir, "earshot and its light dependencies (no audio libraries)")
        self.audio = self._layer("Audio", audio_asset_dir, "PyAV and numpy, for the audio functions")
        self.ffprobe = self._layer(
            "Ffprobe", ffprobe_asset_dir, "static ffprobe, gzip-compressed at /opt/bin/ffprobe.gz, for metering"
        )
        self.by_name: dict[str, lambda_.ILayerVersion] = {
            CORE_LAYER: self.core,
            AUDIO_LAYER: self.audio,
            FFPROBE_LAYER: self.ffprobe,
        }

    def for_function(self, name: str) -> list[lambda_.ILayerVersion]:
        """The layers function ``name`` gets; raises for a function not classified in ``infra.constants``."""
        return [self.by_name[layer] for layer in layers_for(name)]

    def _layer(self, construct_id: str, asset_dir: Path, description: str) -> lambda_.LayerVersion:
        return lambda_.LayerVersion(
            self,
            construct_id,
            code=lambda_.Code.from_asset(str(asset_dir)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description=description,
        )


def _require(path: Path, what: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing, so {what} cannot be packaged: run `make layers` first")


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is missing, so {what} cannot be packaged: run `make layers` first")
