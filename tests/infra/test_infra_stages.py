"""Stages differ only by their arguments: prod keeps its data; other stages clean up after themselves."""

from __future__ import annotations

import pytest
from aws_cdk import RemovalPolicy
from infra_synth import Synthesized

from infra.config import DEFAULT_MEMORY_MB, PROD, StageConfig, stage_config


def test_prod_retains_and_protects_tables(prod: Synthesized) -> None:
    tables = prod.of_type("AWS::DynamoDB::Table").values()
    assert tables
    for table in tables:
        assert table["DeletionPolicy"] == "Retain"
        assert table["UpdateReplacePolicy"] == "Retain"
        assert table["Properties"]["DeletionProtectionEnabled"] is True


def test_prod_retains_buckets_logs_and_keys(prod: Synthesized) -> None:
    for resource_type in ("AWS::S3::Bucket", "AWS::Logs::LogGroup", "AWS::KMS::Key"):
        for resource in prod.of_type(resource_type).values():
            assert resource["DeletionPolicy"] == "Retain", resource_type
    assert not prod.of_type("Custom::S3AutoDeleteObjects")
    assert prod.stack.termination_protection is True


def test_dev_is_disposable(dev: Synthesized) -> None:
    for table in dev.of_type("AWS::DynamoDB::Table").values():
        assert table["DeletionPolicy"] == "Delete"
        assert table["Properties"].get("DeletionProtectionEnabled", False) is False
    assert len(dev.of_type("Custom::S3AutoDeleteObjects")) == 2  # both buckets are emptied on destroy
    assert dev.stack.termination_protection is False


def test_stage_names_the_stack_and_its_resources(synthesized: Synthesized) -> None:
    assert synthesized.stack.stack_name == f"Earshot-{synthesized.stage}"
    (api,) = synthesized.of_type("AWS::ApiGatewayV2::Api").values()
    assert api["Properties"]["Name"] == f"earshot-{synthesized.stage}"


def test_unknown_stages_get_dev_defaults_under_their_own_name() -> None:
    config = stage_config("pr-42")
    assert config.stage == "pr-42"
    assert config.removal_policy == RemovalPolicy.DESTROY
    assert stage_config("prod") == PROD


@pytest.mark.parametrize("name", ["", "Prod", "1dev", "dev_1", "a" * 21])
def test_malformed_stage_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="stage"):
        stage_config(name)


def test_config_refuses_what_would_fail_later() -> None:
    base = stage_config("dev")
    kwargs = {field: getattr(base, field) for field in base.__dataclass_fields__}
    with pytest.raises(ValueError, match="memory"):
        StageConfig(**{**kwargs, "memory_mb": {k: v for k, v in DEFAULT_MEMORY_MB.items() if k != "models"}})
    with pytest.raises(ValueError, match="catalog"):
        StageConfig(**{**kwargs, "catalog_file": "missing.toml"})
    with pytest.raises(ValueError, match="e-mail"):
        StageConfig(**{**kwargs, "alarm_email": "not-an-address"})


def test_context_overrides_apply_to_the_preset() -> None:
    config = stage_config("dev", catalog_file="default.toml", alarm_email="ops@example.com")
    assert config.catalog_file == "default.toml"
    assert config.alarm_email == "ops@example.com"
