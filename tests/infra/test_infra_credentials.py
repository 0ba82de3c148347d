"""Functions that call upstream models may read exactly the credentials the stage's catalog references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack

from infra.capabilities.credentials import credential_references, provider_credential_statements
from infra.config import stage_config

UPSTREAMS = """
[[models]]
sku = "whisper-1"
kind = "transcription"
provider = "openai-transcription"
upstream_model = "whisper-1"
price_micro_usd_per_minute = 6000
credential = "secret:earshot/prod/openai"

[[models]]
sku = "whisper-large"
kind = "transcription"
provider = "openai-transcription"
upstream_model = "whisper-large-v3"
price_micro_usd_per_minute = 2000
base_url = "https://api.groq.com/openai/v1"
credential = "ssm:/earshot/prod/groq-key"

[[models]]
sku = "whisper-1-eu"
kind = "transcription"
provider = "openai-transcription"
upstream_model = "whisper-1"
price_micro_usd_per_minute = 6000
credential = "secret:earshot/prod/openai"
"""


def _catalog(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    return path


def _resolved(stack: Stack, path: Path) -> list[dict[str, Any]]:
    statements = provider_credential_statements(stack, catalog_path=path, stage="prod")
    return [stack.resolve(statement.to_statement_json()) for statement in statements]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_shipped_catalog_reads_one_stage_parameter_per_provider_and_no_environment(stage: str) -> None:
    assert credential_references(stage_config(stage).catalog_path, stage=stage) == [
        f"ssm:/earshot/{stage}/gemini-api-key",
        f"ssm:/earshot/{stage}/groq-api-key",
        f"ssm:/earshot/{stage}/openai-api-key",
    ]


def test_env_references_are_left_to_local_mode_when_a_deployed_one_follows(tmp_path: Path) -> None:
    text = UPSTREAMS.replace(
        'credential = "secret:earshot/prod/openai"',
        'credentials = ["env:OPENAI_API_KEY", "secret:earshot/{stage}/openai"]',
    )
    assert credential_references(_catalog(tmp_path, text), stage="prod") == [
        "secret:earshot/prod/openai",
        "ssm:/earshot/prod/groq-key",
    ]


def test_each_referenced_secret_and_parameter_is_readable_and_nothing_else(tmp_path: Path) -> None:
    stack = Stack()
    secrets, parameters = _resolved(stack, _catalog(tmp_path, UPSTREAMS))

    assert secrets["Action"] == "secretsmanager:GetSecretValue"
    (secret_arn,) = [secrets["Resource"]] if isinstance(secrets["Resource"], dict) else secrets["Resource"]
    assert secret_arn["Fn::Join"][1][-1] == ":secret:earshot/prod/openai-??????"
    assert parameters["Action"] == "ssm:GetParameter"
    assert parameters["Resource"]["Fn::Join"][1][-1] == ":parameter/earshot/prod/groq-key"
    assert "*" not in str(secrets) + str(parameters)


def test_a_model_only_the_environment_could_make_live_is_refused_for_deployed_stages(tmp_path: Path) -> None:
    text = UPSTREAMS.replace('"secret:earshot/prod/openai"', '"env:OPENAI_API_KEY"', 1)
    with pytest.raises(ValueError, match="'whisper-1' names only env: credentials"):
        provider_credential_statements(Stack(), catalog_path=_catalog(tmp_path, text), stage="prod")
