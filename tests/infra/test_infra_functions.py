"""Every function runs the same way (python3.13, x86_64, JSON logs) with only the access it needs.

Which layers each function gets: test_infra_layers.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from infra_synth import RETENTION_DAYS, Synthesized

from earshot import routes
from earshot.adapters.dynamo_layout import TABLES
from infra.constants import COUNT_REQUESTS, DEPLOYED_MAX_INLINE_BYTES, FUNCTION_ACCESS

FUNCTIONS = routes.functions()
LOG_WRITES = {"logs:CreateLogStream", "logs:PutLogEvents"}
EXPECTED_ENV = {
    "EARSHOT_RUNTIME",
    "EARSHOT_STAGE",
    "EARSHOT_BUCKET_NAME",
    "EARSHOT_MAX_INLINE_BYTES",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    *(spec.env_var for spec in TABLES),
}


def _function(synth: Synthesized, name: str) -> dict[str, Any]:
    props: dict[str, Any] = synth.resources[synth.function_logical_id(name)]["Properties"]
    return props


def _statements(synth: Synthesized, name: str) -> list[dict[str, Any]]:
    """Every IAM statement that applies to the function's role: its inline policies and any attached policy."""
    role_id = _function(synth, name)["Role"]["Fn::GetAtt"][0]
    role = synth.resources[role_id]["Properties"]
    assert "ManagedPolicyArns" not in role, f"{name}: managed policies grant more than the function needs"
    documents = [policy["PolicyDocument"] for policy in role.get("Policies", [])]
    for policy in synth.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            documents.append(policy["Properties"]["PolicyDocument"])
    return [statement for document in documents for statement in document["Statement"]]


def _actions(statement: dict[str, Any]) -> set[str]:
    actions = statement["Action"]
    return {actions} if isinstance(actions, str) else set(actions)


def _resources(statement: dict[str, Any]) -> list[Any]:
    resources = statement["Resource"]
    return resources if isinstance(resources, list) else [resources]


def _table_id(synth: Synthesized, logical: str) -> str:
    spec = next(spec for spec in TABLES if spec.logical == logical)
    ref = _function(synth, "models")["Environment"]["Variables"][spec.env_var]
    table_id: str = ref["Ref"]
    return table_id


def _dynamodb_grants(synth: Synthesized, name: str) -> dict[str, set[str]]:
    """DynamoDB actions by table logical name (``<table>/index/<name>`` for an index) the function may use."""
    logical_by_id = {_table_id(synth, spec.logical): spec.logical for spec in TABLES}
    grants: dict[str, set[str]] = {}
    for statement in _statements(synth, name):
        actions = {a for a in _actions(statement) if a.startswith("dynamodb:")}
        if not actions:
            continue
        for resource in _resources(statement):
            if "Fn::GetAtt" in resource:
                key = logical_by_id[resource["Fn::GetAtt"][0]]
            else:  # Fn::Join [<table arn>, "/index/<name>"]
                parts = resource["Fn::Join"][1]
                key = logical_by_id[parts[0]["Fn::GetAtt"][0]] + parts[1]
            grants.setdefault(key, set()).update(actions)
    return grants


def test_the_manifest_and_the_access_table_name_the_same_functions() -> None:
    assert set(FUNCTION_ACCESS) == set(FUNCTIONS)


def test_one_lambda_per_function_on_python313_x86_64_with_the_core_layer(synthesized: Synthesized) -> None:
    core = synthesized.layer_logical_ids()["core"]
    for name in FUNCTIONS:
        props = _function(synthesized, name)
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == ["x86_64"]
        assert props["Handler"] == "handler.lambda_handler"
        assert {"Ref": core} in props["Layers"]
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert props["MemorySize"] == synthesized.config.memory_mb[name]
        assert props["Timeout"] == (10 if name == "authorizer" else 29)


def test_functions_get_the_deployed_environment(synthesized: Synthesized) -> None:
    for name in FUNCTIONS:
        env = _function(synthesized, name)["Environment"]["Variables"]
        assert env["EARSHOT_RUNTIME"] == "aws"
        assert env["EARSHOT_STAGE"] == synthesized.stage
        assert env["EARSHOT_MAX_INLINE_BYTES"] == str(DEPLOYED_MAX_INLINE_BYTES)
        assert env["POWERTOOLS_SERVICE_NAME"] == "earshot"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Earshot"
        assert "Ref" in env["EARSHOT_BUCKET_NAME"]
        for spec in TABLES:
            assert synthesized.resources[env[spec.env_var]["Ref"]]["Type"] == "AWS::DynamoDB::Table"
        # Nothing else: no credentials, and no EARSHOT_CATALOG (the presets deploy the catalog the core ships).
        assert set(env) == EXPECTED_ENV


def test_each_function_has_its_own_log_group_with_retention(synthesized: Synthesized) -> None:
    days = RETENTION_DAYS[synthesized.config.log_retention.value]
    for name in FUNCTIONS:
        log_group_id = _function(synthesized, name)["LoggingConfig"]["LogGroup"]["Ref"]
        log_group = synthesized.resources[log_group_id]["Properties"]
        assert log_group["LogGroupName"] == f"/aws/lambda/earshot-{synthesized.stage}-{name}"
        assert log_group["RetentionInDays"] == days


@pytest.mark.parametrize("name", FUNCTIONS)
def test_roles_are_separate_and_have_no_wildcards(dev: Synthesized, name: str) -> None:
    roles = {_function(dev, fn)["Role"]["Fn::GetAtt"][0] for fn in FUNCTIONS}
    assert len(roles) == len(FUNCTIONS)
    for statement in _statements(dev, name):
        assert statement["Effect"] == "Allow"
        for action in _actions(statement):
            assert "*" not in action, f"{name}: wildcard action {action}"
        for resource in _resources(statement):
            assert resource != "*", f"{name}: wildcard resource"
            assert "*" not in str(resource), f"{name}: wildcard in {resource}"


def test_every_function_may_write_only_its_own_logs(dev: Synthesized) -> None:
    for name in FUNCTIONS:
        log_group_id = _function(dev, name)["LoggingConfig"]["LogGroup"]["Ref"]
        log_statements = [s for s in _statements(dev, name) if _actions(s) & LOG_WRITES]
        assert len(log_statements) == 1
        assert _actions(log_statements[0]) == LOG_WRITES
        assert _resources(log_statements[0]) == [{"Fn::GetAtt": [log_group_id, "Arn"]}]


def test_the_access_table_follows_the_manifest() -> None:
    # The core counts every authenticated request against its key (earshot.http.app); public routes are not counted.
    for name in FUNCTIONS:
        authenticated = any(route.auth for route in routes.routes_for(name))
        counts = COUNT_REQUESTS in FUNCTION_ACCESS[name].tables
        assert counts == authenticated, name


def test_openapi_touches_no_data(dev: Synthesized) -> None:
    actions = {action for statement in _statements(dev, "openapi") for action in _actions(statement)}
    assert actions == LOG_WRITES


def test_models_only_counts_requests(dev: Synthesized) -> None:
    assert _dynamodb_grants(dev, "models") == {"rate_limits": {"dynamodb:UpdateItem"}}


def test_authorizer_only_reads_the_api_keys_table(dev: Synthesized) -> None:
    assert _dynamodb_grants(dev, "authorizer") == {"api_keys": {"dynamodb:GetItem"}}
    services = {a.split(":")[0] for s in _statements(dev, "authorizer") for a in _actions(s)}
    assert services == {"logs", "dynamodb"}


def test_account_reads_balances_and_queries_its_ledger_index(dev: Synthesized) -> None:
    assert _dynamodb_grants(dev, "account") == {
        "accounts": {"dynamodb:GetItem"},
        "ledger/index/by_account": {"dynamodb:Query"},
        "rate_limits": {"dynamodb:UpdateItem"},
    }


@pytest.mark.parametrize("name", ["transcriptions", "understand", "extract"])
def test_metered_functions_debit_and_refund_and_count(dev: Synthesized, name: str) -> None:
    assert _dynamodb_grants(dev, name) == {
        "accounts": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        "ledger": {"dynamodb:GetItem", "dynamodb:PutItem"},
        "rate_limits": {"dynamodb:UpdateItem"},
    }
    # The shipped catalog has only embedded engines, so there is no provider credential to read.
    services = {a.split(":")[0] for s in _statements(dev, name) for a in _actions(s)}
    assert services == {"logs", "dynamodb"}


def test_no_function_may_delete_or_scan(dev: Synthesized) -> None:
    for name in FUNCTIONS:
        actions = {a for s in _statements(dev, name) for a in _actions(s)}
        assert not actions & {"dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:BatchWriteItem", "s3:DeleteObject"}
