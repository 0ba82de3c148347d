"""Synthesizing the CDK app in-process for the infra tests (a uniquely named helper module, not a conftest)."""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `infra` is a directory of the repository, not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from aws_cdk import App, CfnElement, Stack  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from infra.app import build_app  # noqa: E402
from infra.config import StageConfig, stage_config  # noqa: E402
from infra.constants import AUDIO_LAYER, AUDIO_LAYER_MODULES, CORE_LAYER, FFPROBE_LAYER  # noqa: E402
from infra.naming import stack_name  # noqa: E402

# RetentionDays members by name, as CloudFormation counts them.
RETENTION_DAYS = {
    "ONE_WEEK": 7,
    "TWO_WEEKS": 14,
    "ONE_MONTH": 30,
    "THREE_MONTHS": 90,
    "SIX_MONTHS": 180,
    "ONE_YEAR": 365,
}


@dataclass(frozen=True)
class Synthesized:
    stage: str
    config: StageConfig
    app: App
    stack: Stack
    template: Template
    resources: dict[str, dict[str, Any]]
    assembly_dir: Path

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {lid: r for lid, r in self.resources.items() if r["Type"] == resource_type}

    def layer_logical_ids(self) -> dict[str, str]:
        """Logical ids of the layers, by layer name (``core``, ``audio``, ``ffprobe``)."""
        layers = self.stack.node.find_child("Layers")
        ids = {}
        for name in (CORE_LAYER, AUDIO_LAYER, FFPROBE_LAYER):
            resource = layers.node.find_child(name.capitalize()).node.default_child
            assert isinstance(resource, CfnElement)
            ids[name] = self.stack.get_logical_id(resource)
        return ids

    def function_logical_id(self, name: str) -> str:
        """The logical id of the Lambda function ``earshot-<stage>-<name>``."""
        wanted = f"earshot-{self.stage}-{name}"
        for lid, resource in self.of_type("AWS::Lambda::Function").items():
            if resource["Properties"].get("FunctionName") == wanted:
                return lid
        raise AssertionError(f"no function named {wanted}")


def cdk_json_context() -> dict[str, Any]:
    """The context `npx cdk` passes (feature flags included), so tests synthesize what the CLI does."""
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return context


def make_stub_layers(root: Path) -> dict[str, Path]:
    """Layer directories with the shape the stack checks for, by layer name, and a few bytes in each."""
    core, audio, ffprobe = root / CORE_LAYER, root / AUDIO_LAYER, root / FFPROBE_LAYER
    (core / "python" / "earshot").mkdir(parents=True)
    (core / "python" / "earshot" / "__init__.py").write_text('"""stub"""\n')
    for module in AUDIO_LAYER_MODULES:
        (audio / "python" / module).mkdir(parents=True)
        (audio / "python" / module / "__init__.py").write_text('"""stub"""\n')
    (ffprobe / "bin").mkdir(parents=True)
    (ffprobe / "bin" / "ffprobe.gz").write_bytes(gzip.compress(b"#!/bin/sh\n"))
    (ffprobe / "bin" / "ffprobe.sha256").write_text(f"sha256={'0' * 64} size=10\n")
    return {CORE_LAYER: core, AUDIO_LAYER: audio, FFPROBE_LAYER: ffprobe}


def synthesize(stage: str, layers: Mapping[str, Path], outdir: Path) -> Synthesized:
    context = {**cdk_json_context(), "stage": stage}
    app = build_app(
        context=context,
        core_layer_dir=layers[CORE_LAYER],
        audio_layer_dir=layers[AUDIO_LAYER],
        ffprobe_layer_dir=layers[FFPROBE_LAYER],
        outdir=str(outdir),
    )
    assembly = app.synth()  # raises with the report when cdk-nag finds anything unacknowledged
    stack = app.node.find_child(stack_name(stage))
    assert isinstance(stack, Stack)
    template_json = assembly.get_stack_by_name(stack.stack_name).template
    return Synthesized(
        stage=stage,
        config=stage_config(stage),
        app=app,
        stack=stack,
        template=Template.from_json(template_json),
        resources=template_json["Resources"],
        assembly_dir=Path(assembly.directory),
    )
