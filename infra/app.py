"""The CDK app: ``npx cdk synth -c stage=NAME`` (default dev) builds the stack ``Earshot-<stage>``.

Context: ``stage``; optional ``alarm_email``, ``catalog`` (a file in earshot/catalogs) and ``account_concurrency``
(the account's Lambda concurrency quota, default 1000: the stage's reservations must leave 100 of it unreserved).
Stacks are environment-agnostic, so synthesis needs no AWS credentials, no network and no Docker; ``cdk deploy``
takes the account and region from the credentials it runs with. cdk-nag's AwsSolutions and Serverless packs
validate the assembly: a finding that is not acknowledged (with its reason, next to the resource) fails synthesis.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python infra/app.py`: import `infra` from the repository root, not infra/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from infra.config import stage_config
from infra.constants import AUDIO_LAYER_DIR, CORE_LAYER_DIR, DEFAULT_STAGE, FFPROBE_LAYER_DIR
from infra.naming import stack_name
from infra.stack import EarshotStack


def build_app(
    *,
    context: Mapping[str, Any] | None = None,
    core_layer_dir: Path = CORE_LAYER_DIR,
    audio_layer_dir: Path = AUDIO_LAYER_DIR,
    ffprobe_layer_dir: Path = FFPROBE_LAYER_DIR,
    outdir: str | None = None,
) -> App:
    """The app with one stage's stack and the cdk-nag checks; tests pass stub layer directories."""
    app = App(context=dict(context) if context is not None else None, outdir=outdir)
    stage = str(app.node.try_get_context("stage") or DEFAULT_STAGE)
    config = stage_config(
        stage,
        alarm_email=app.node.try_get_context("alarm_email"),
        catalog_file=app.node.try_get_context("catalog"),
        account_concurrency=_optional_int(app.node.try_get_context("account_concurrency")),
    )
    EarshotStack(
        app,
        stack_name(stage),
        config=config,
        core_layer_dir=core_layer_dir,
        audio_layer_dir=audio_layer_dir,
        ffprobe_layer_dir=ffprobe_layer_dir,
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True), ServerlessChecks(app, verbose=True))
    return app


def _optional_int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()
