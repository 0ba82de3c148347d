"""Every function runs the same way (python3.13, x86_64, JSON logs) with only the access it needs.

Which layers each function gets: test_infra_layers.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from infra_synth import RETENTION_DAYS, Synthesized

from earshot import routes
from earshot.adapters.dynamo_layout import TABLES
from infra.capabilities.functions import timeout_sec
from infra.constants import (
    COUNT_REQUESTS,
    DEPLOYED_MAX_INLINE_BYTES,
    FUNCTION_ACCESS,
    IDEMPOTENT_POSTS,
    INFERENCE_FUNCTION_ENV,
    STATE_MACHINE_ARN_ENV,
    TRACED_FUNCTIONS,
)

FUNCTIONS = routes.functions()
LOG_WRITES = {"logs:CreateLogStream", "logs:PutLogEvents"}
XRAY_WRITES = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
SUBMITTERS = ("transcriptions", "understand", "extract", "understanding", "ingest")
IDEMPOTENCY_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
EXPECTED_ENV = {
    "EARSHOT_RUNTIME",
    "EARSHOT_STAGE",
    "EARSHOT_BUCKET_NAME",
    "EARSHOT_MAX_INLINE_BYTES",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "PYDANTIC_DISABLE_PLUGINS",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
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


def _bucket_id(synth: Synthesized) -> str:
    bucket_id: str = _function(synth, "models")["Environment"]["Variables"]["EARSHOT_BUCKET_NAME"]["Ref"]
    return bucket_id


def _s3_grants(synth: Synthesized, name: str) -> dict[str, set[str]]:
    """S3 actions by resource: ``bucket`` for the bucket itself, ``<prefix>*`` for objects under a key prefix."""
    bucket = {"Fn::GetAtt": [_bucket_id(synth), "Arn"]}
    grants: dict[str, set[str]] = {}
    for statement in _statements(synth, name):
        actions = {a for a in _actions(statement) if a.startswith("s3:")}
        if not actions:
            continue
        for resource in _resources(statement):
            if resource == bucket:
                key = "bucket"
            else:
                arn, suffix = resource["Fn::Join"][1]
                assert arn == bucket, f"{name}: S3 access outside the blob bucket: {resource}"
                key = suffix.removeprefix("/")
            grants.setdefault(key, set()).update(actions)
    return grants


def _all_actions(synth: Synthesized, name: str) -> set[str]:
    return {action for statement in _statements(synth, name) for action in _actions(statement)}


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
    # The inference function serves no route: API functions and the state machine invoke it.
    assert set(FUNCTION_ACCESS) == set(FUNCTIONS) | {"inference"}


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
        assert props["Timeout"] == timeout_sec(name)


def test_timeouts_fit_what_invokes_each_function() -> None:
    assert timeout_sec("authorizer") == 10  # API Gateway waits at most 10 s for an authorizer
    for route in routes.ROUTES:
        assert timeout_sec(route.function) == 29, route.function  # the HTTP API's 30 s integration timeout
    assert timeout_sec("inference") == 900  # the engine steps' TimeoutSeconds; Lambda's maximum
    assert timeout_sec("workflow") == 300  # resolve_input's (a URL fetch), the longest step it runs
    assert 29 <= timeout_sec("ingest") <= 900


def test_functions_get_the_deployed_environment(synthesized: Synthesized) -> None:
    for name in FUNCTIONS:
        env = _function(synthesized, name)["Environment"]["Variables"]
        assert env["EARSHOT_RUNTIME"] == "aws"
        assert env["EARSHOT_STAGE"] == synthesized.stage
        assert env["EARSHOT_MAX_INLINE_BYTES"] == str(DEPLOYED_MAX_INLINE_BYTES)
        assert env["POWERTOOLS_SERVICE_NAME"] == "earshot"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Earshot"
        assert env["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
        assert "Ref" in env["EARSHOT_BUCKET_NAME"]
        for spec in TABLES:
            assert synthesized.resources[env[spec.env_var]["Ref"]]["Type"] == "AWS::DynamoDB::Table"
        # Nothing else: no credentials, and no EARSHOT_CATALOG (the presets deploy the catalog the core ships).
        # Only the functions that submit tasks learn the state machine's ARN.
        # Only the functions that submit tasks learn the state machine's ARN; the ones that run embedded engines, the
        # inference function's name.
        expected = EXPECTED_ENV | ({STATE_MACHINE_ARN_ENV} if name in SUBMITTERS else set())
        if FUNCTION_ACCESS[name].invokes_inference:
            expected |= {INFERENCE_FUNCTION_ENV}
            assert env[INFERENCE_FUNCTION_ENV] == {"Ref": synthesized.function_logical_id("inference")}
        assert set(env) == expected, name


def test_each_function_has_its_own_unnamed_log_group_with_retention(synthesized: Synthesized) -> None:
    days = RETENTION_DAYS[synthesized.config.log_retention.value]
    groups = set()
    for name in FUNCTIONS:
        log_group_id = _function(synthesized, name)["LoggingConfig"]["LogGroup"]["Ref"]
        log_group = synthesized.resources[log_group_id]
        # CloudFormation names it (uniquely per creation): a retained group never blocks a re-created stack.
        assert "LogGroupName" not in log_group["Properties"]
        assert log_group["Properties"]["RetentionInDays"] == days
        expected_policy = "Retain" if synthesized.stage == "prod" else "Delete"
        assert log_group["DeletionPolicy"] == expected_policy
        groups.add(log_group_id)
    assert len(groups) == len(FUNCTIONS)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_roles_are_separate_and_have_no_wildcards(dev: Synthesized, name: str) -> None:
    roles = {_function(dev, fn)["Role"]["Fn::GetAtt"][0] for fn in FUNCTIONS}
    assert len(roles) == len(FUNCTIONS)
    for statement in _statements(dev, name):
        assert statement["Effect"] == "Allow"
        if name in TRACED_FUNCTIONS and _actions(statement) == XRAY_WRITES:
            continue  # active tracing: these two actions take no resource ARN (acknowledged with cdk-nag)
        for action in _actions(statement):
            assert "*" not in action, f"{name}: wildcard action {action}"
        for resource in _resources(statement):
            assert resource != "*", f"{name}: wildcard resource"
            if "Fn::Join" in resource and str(resource["Fn::Join"][1][-1]).endswith("/*"):
                # The one wildcard allowed: S3 objects under a key prefix of the blob bucket, e.g. <bucket>/tasks/*.
                *arn, suffix = resource["Fn::Join"][1]
                assert arn == [{"Fn::GetAtt": [_bucket_id(dev), "Arn"]}], f"{name}: wildcard in {resource}"
                assert suffix.count("*") == 1 and suffix.startswith("/") and suffix[1:-1].strip("/"), suffix
                continue
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
def test_processing_routes_debit_refund_count_and_submit_tasks(dev: Synthesized, name: str) -> None:
    assert _dynamodb_grants(dev, name) == {
        "accounts": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        "ledger": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},  # the hold closes on delivery
        "rate_limits": {"dynamodb:UpdateItem"},
        "idempotency": IDEMPOTENCY_ACTIONS,
        "tasks": {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:ConditionCheckItem"},
        "task_events": {"dynamodb:Query", "dynamodb:PutItem"},
    }
    # file_id: the upload record and the file (ListBucket so a missing one is a 404); async: the task's input;
    # an engine call's audio above the invoke payload limit, put for the call and deleted after it.
    assert _s3_grants(dev, name) == {
        "uploads/*": {"s3:GetObject"},
        "inbox/*": {"s3:GetObject"},
        "tasks/*": {"s3:PutObject"},
        "inference/*": {"s3:PutObject", "s3:DeleteObject"},
        "bucket": {"s3:ListBucket"},
    }
    # The shipped catalog's upstream models read their keys from the stage's SSM parameters (and nothing else); the
    # embedded engines run in the inference function, which these may invoke (and no other function).
    services = {a.split(":")[0] for a in _all_actions(dev, name)}
    assert services == {"logs", "dynamodb", "s3", "states", "lambda", "ssm"}
    (invoke,) = [s for s in _statements(dev, name) if "lambda:InvokeFunction" in _actions(s)]
    assert _resources(invoke) == [{"Fn::GetAtt": [dev.function_logical_id("inference"), "Arn"]}]


def test_understanding_submits_tasks_but_never_charges(dev: Synthesized) -> None:
    grants = _dynamodb_grants(dev, "understanding")
    assert grants["accounts"] == {"dynamodb:GetItem"}  # is audio enabled? the workflow debits, not this route
    assert "ledger" not in grants
    assert grants["tasks"] == {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:ConditionCheckItem"}
    assert _s3_grants(dev, "understanding")["tasks/*"] == {"s3:PutObject", "s3:GetObject"}  # sync=true reads results


def test_every_post_function_keeps_idempotency_records_and_no_other_does(dev: Synthesized) -> None:
    posting = {route.function for route in routes.ROUTES if route.method == "POST"}
    assert posting == {"transcriptions", "understand", "extract", "understanding", "uploads"}
    for name in FUNCTIONS:
        grants = _dynamodb_grants(dev, name).get("idempotency")
        assert grants == (IDEMPOTENCY_ACTIONS if name in posting else None), name
        assert (IDEMPOTENT_POSTS in FUNCTION_ACCESS[name].tables) == (name in posting), name


def test_only_submitting_functions_may_start_executions_and_only_of_the_task_state_machine(dev: Synthesized) -> None:
    (machine_id,) = dev.of_type("AWS::StepFunctions::StateMachine")
    for name in FUNCTIONS:
        starts = [s for s in _statements(dev, name) if any(a.startswith("states:") for a in _actions(s))]
        if name in SUBMITTERS:
            (statement,) = starts
            assert _actions(statement) == {"states:StartExecution"}
            assert _resources(statement) == [{"Ref": machine_id}]
        else:
            assert starts == [], name


def test_tasks_reads_and_deletes_tasks_but_cannot_charge_or_start_anything(dev: Synthesized) -> None:
    grants = _dynamodb_grants(dev, "tasks")
    assert grants == {
        "tasks": {"dynamodb:GetItem", "dynamodb:DeleteItem"},
        "task_events": {"dynamodb:Query", "dynamodb:BatchWriteItem"},
        "step_markers": {"dynamodb:Query", "dynamodb:BatchWriteItem"},
        "rate_limits": {"dynamodb:UpdateItem"},
    }
    assert "accounts" not in grants and "ledger" not in grants  # no debit, no refund
    assert _s3_grants(dev, "tasks") == {"tasks/*": {"s3:GetObject", "s3:DeleteObject"}}
    assert not {"dynamodb:PutItem", "states:StartExecution"} & _all_actions(dev, "tasks")


def test_uploads_writes_records_and_signs_inbox_posts_but_starts_nothing(dev: Synthesized) -> None:
    assert _dynamodb_grants(dev, "uploads") == {
        "accounts": {"dynamodb:GetItem"},
        "rate_limits": {"dynamodb:UpdateItem"},
        "idempotency": IDEMPOTENCY_ACTIONS,
    }
    # The presigned POST is checked against the signer's role: PutObject under inbox/ is what lets the upload land.
    assert _s3_grants(dev, "uploads") == {"uploads/*": {"s3:PutObject"}, "inbox/*": {"s3:PutObject"}}
    assert not any(a.startswith("states:") for a in _all_actions(dev, "uploads"))


def test_ingest_reads_upload_records_and_submits_their_tasks(dev: Synthesized) -> None:
    assert _dynamodb_grants(dev, "ingest") == {
        "tasks": {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:ConditionCheckItem"},
        "task_events": {"dynamodb:Query", "dynamodb:PutItem"},
    }
    # The audio stays where it landed: the task points at it, so no object is written here.
    assert _s3_grants(dev, "ingest") == {"uploads/*": {"s3:GetObject"}, "bucket": {"s3:ListBucket"}}


def test_workflow_runs_the_steps_but_cannot_start_tasks_or_count_requests(dev: Synthesized) -> None:
    assert _dynamodb_grants(dev, "workflow") == {
        "accounts": {"dynamodb:GetItem", "dynamodb:UpdateItem"},  # debit, refund, the webhook secret
        "ledger": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
        "tasks": {"dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:ConditionCheckItem"},
        "task_events": {"dynamodb:Query", "dynamodb:PutItem"},
        "step_markers": {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem"},
    }
    assert _s3_grants(dev, "workflow") == {
        "tasks/*": {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
        "inbox/*": {"s3:GetObject", "s3:DeleteObject"},  # an upload's audio, deleted after processing unless retained
    }
    services = {a.split(":")[0] for a in _all_actions(dev, "workflow")}
    assert services == {"logs", "dynamodb", "s3", "xray", "ssm"}  # xray: traced steps; ssm: provider keys


def test_nothing_scans_and_only_the_owners_of_a_lifecycle_delete(dev: Synthesized) -> None:
    deleting = {"dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "s3:DeleteObject"}
    for name in FUNCTIONS:
        actions = _all_actions(dev, name)
        assert "dynamodb:Scan" not in actions, name
        deletes = {
            (key, action)
            for key, grants in {**_dynamodb_grants(dev, name), **_s3_grants(dev, name)}.items()
            for action in grants & deleting
        }
        if name == "tasks":  # DELETE /v1/tasks/{id}: the task, its events, markers and blobs
            assert {key for key, _ in deletes} == {"tasks", "task_events", "step_markers", "tasks/*"}
        elif name == "workflow":  # a task's input once processed
            assert deletes == {("tasks/*", "s3:DeleteObject"), ("inbox/*", "s3:DeleteObject")}
        elif FUNCTION_ACCESS[name].invokes_inference:  # an engine call's audio, after the call; an Idempotency-Key
            assert deletes == {("idempotency", "dynamodb:DeleteItem"), ("inference/*", "s3:DeleteObject")}, name
        else:  # releasing an Idempotency-Key after a failed request
            assert deletes <= {("idempotency", "dynamodb:DeleteItem")}, name


def test_the_sweeper_runs_on_a_schedule_and_touches_only_holds_and_tasks(dev: Synthesized) -> None:
    assert _dynamodb_grants(dev, "sweeper") == {
        "accounts": {"dynamodb:GetItem", "dynamodb:UpdateItem"},  # the refund
        "ledger": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},  # refund entry, close the hold
        "ledger/index/open_holds": {"dynamodb:Query"},
        "tasks": {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"},
        "tasks/index/unfinished": {"dynamodb:Query"},
        "task_events": {"dynamodb:Query", "dynamodb:PutItem"},
    }
    assert _s3_grants(dev, "sweeper") == {}
    assert not any(a.startswith("states:") for a in _all_actions(dev, "sweeper"))
    rules = dev.of_type("AWS::Events::Rule")
    scheduled = [rule for rule in rules.values() if "ScheduleExpression" in rule["Properties"]]
    assert len(scheduled) == 1 and scheduled[0]["Properties"]["ScheduleExpression"].startswith("rate(")
    target = scheduled[0]["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0]
    assert target == dev.function_logical_id("sweeper")


def test_functions_that_build_engines_or_list_models_read_exactly_the_stage_provider_parameters(
    dev: Synthesized,
) -> None:
    for name in FUNCTIONS:
        reads = [
            s for s in _statements(dev, name) if any(a.startswith(("ssm:", "secretsmanager:")) for a in _actions(s))
        ]
        if not FUNCTION_ACCESS[name].provider_credentials:
            assert reads == [], name
            continue
        (statement,) = reads
        assert _actions(statement) == {"ssm:GetParameter"}, name
        names = sorted(resource["Fn::Join"][1][-1] for resource in _resources(statement))
        assert names == [
            ":parameter/earshot/dev/gemini-api-key",
            ":parameter/earshot/dev/groq-api-key",
            ":parameter/earshot/dev/openai-api-key",
        ], name
