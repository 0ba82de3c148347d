"""Synthesize the CDK app in-process, once per stage, against stub layer directories.

The real layers are hundreds of MB of wheels and a compressed static ffprobe (``make layers``); the stack only
needs directories with the right shape, so these tests stay offline and fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from infra_synth import Synthesized, make_stub_layers, synthesize


@pytest.fixture(scope="session")
def stub_layers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_stub_layers(tmp_path_factory.mktemp("layers"))


@pytest.fixture(scope="session")
def dev(stub_layers: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize("dev", stub_layers, tmp_path_factory.mktemp("cdk-dev"))


@pytest.fixture(scope="session")
def prod(stub_layers: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize("prod", stub_layers, tmp_path_factory.mktemp("cdk-prod"))


@pytest.fixture(scope="session", params=["dev", "prod"])
def synthesized(request: pytest.FixtureRequest) -> Iterator[Synthesized]:
    yield request.getfixturevalue(request.param)
