"""What keeps a deployed stage operable: reserved concurrency that protects the API, failed upload events kept and
alarmed on, a dashboard, tracing where it pays, deleted audio that really goes."""

from __future__ import annotations

from typing import Any

import pytest
from infra_synth import Synthesized

from earshot import routes
from infra.config import DEFAULT_ACCOUNT_CONCURRENCY, LAMBDA_MIN_UNRESERVED_CONCURRENCY, PRESETS, StageConfig
from infra.constants import (
    AUDIO_PREFIXES,
    DELETED_AUDIO_EXPIRY_DAYS,
    INGEST_ASYNC_RETRIES,
    TRACED_FUNCTIONS,
)

FUNCTIONS = routes.functions()


def _function(synth: Synthesized, name: str) -> dict[str, Any]:
    props: dict[str, Any] = synth.resources[synth.function_logical_id(name)]["Properties"]
    return props


# --- reserved concurrency --------------------------------------------------------------------------------------
def test_reservations_come_from_the_stage_config(synthesized: Synthesized) -> None:
    reserved = synthesized.config.reserved_concurrency
    for name in FUNCTIONS:
        assert _function(synthesized, name).get("ReservedConcurrentExecutions") == reserved.get(name), name


@pytest.mark.parametrize("stage", sorted(PRESETS))
def test_slow_work_is_capped_and_the_authorizer_has_a_floor(stage: str) -> None:
    reserved = PRESETS[stage].reserved_concurrency
    # 900 s workflow steps and 25 s long-polls cannot take the whole pool from the routes; every route needs the
    # authorizer, so it keeps a share of its own.
    assert {"authorizer", "workflow", "tasks", "ingest"} <= set(reserved)
    # The synchronous processing routes share the rest of the pool: a reservation would also cap them.
    assert not {"transcriptions", "understand", "extract"} & set(reserved)
    unreserved = PRESETS[stage].account_concurrency - sum(reserved.values())
    assert unreserved >= LAMBDA_MIN_UNRESERVED_CONCURRENCY
    assert PRESETS[stage].account_concurrency == DEFAULT_ACCOUNT_CONCURRENCY
    # The routes keep more than the slow work may take.
    assert unreserved > reserved["workflow"] + reserved["tasks"]


def test_a_stage_cannot_reserve_what_lambda_keeps_unreserved() -> None:
    base = PRESETS["prod"]
    with pytest.raises(ValueError, match="keeps 100 unreserved"):
        StageConfig(**{**base.__dict__, "account_concurrency": 400})
    with pytest.raises(ValueError, match="unknown function"):
        StageConfig(**{**base.__dict__, "reserved_concurrency": {"nope": 1}})
    with pytest.raises(ValueError, match="reservation of 0"):
        StageConfig(**{**base.__dict__, "reserved_concurrency": {"workflow": 0}})


# --- failed upload events ---------------------------------------------------------------------------------------
def test_failed_upload_events_go_to_an_alarmed_queue(synthesized: Synthesized) -> None:
    (config,) = synthesized.of_type("AWS::Lambda::EventInvokeConfig").values()
    props = config["Properties"]
    assert props["FunctionName"] == {"Ref": synthesized.function_logical_id("ingest")}
    assert props["MaximumRetryAttempts"] == INGEST_ASYNC_RETRIES
    queue_id = props["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    queue = synthesized.resources[queue_id]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    alarms = [a["Properties"] for a in synthesized.of_type("AWS::CloudWatch::Alarm").values()]
    (alarm,) = [a for a in alarms if a["AlarmName"] == f"earshot-{synthesized.stage}-upload-events-failed"]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    assert alarm["Threshold"] == 1 and alarm["AlarmActions"]
    # ingest may send to that queue and no other.
    sends = [
        statement
        for policy in synthesized.of_type("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "sqs:SendMessage" in str(statement["Action"])
    ]
    assert [statement["Resource"] for statement in sends] == [{"Fn::GetAtt": [queue_id, "Arn"]}]


# --- dashboard ---------------------------------------------------------------------------------------------------
def test_one_dashboard_shows_the_api_every_function_the_tasks_and_the_alarms(synthesized: Synthesized) -> None:
    (dashboard,) = synthesized.of_type("AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == f"earshot-{synthesized.stage}-overview"
    body = str(synthesized.stack.resolve(dashboard["Properties"]["DashboardBody"]))
    for title in ("API requests and errors", "API latency", "Task executions", "Operator queues", "alarms"):
        assert title in body, title
    for name in FUNCTIONS:
        assert f'"label":"{name}"' in body, name
    assert "ExecutionsFailed" in body and "ApproximateNumberOfMessagesVisible" in body


# --- tracing -----------------------------------------------------------------------------------------------------
def test_tracing_is_on_where_it_pays_and_off_elsewhere(synthesized: Synthesized) -> None:
    for name in FUNCTIONS:
        tracing = _function(synthesized, name).get("TracingConfig")
        if name in TRACED_FUNCTIONS:
            assert tracing == {"Mode": "Active"}, name
        else:
            assert tracing is None, name
    (machine,) = synthesized.of_type("AWS::StepFunctions::StateMachine").values()
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}


# --- deleted audio ------------------------------------------------------------------------------------------------
def test_noncurrent_versions_of_audio_expire_after_a_day_in_every_stage(synthesized: Synthesized) -> None:
    (bucket,) = [
        b["Properties"]
        for b in synthesized.of_type("AWS::S3::Bucket").values()
        if b["Properties"].get("VersioningConfiguration")
    ]
    rules = bucket["LifecycleConfiguration"]["Rules"]
    for prefix in AUDIO_PREFIXES:
        (rule,) = [r for r in rules if r.get("Prefix") == prefix and "NoncurrentVersionExpiration" in r]
        assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": DELETED_AUDIO_EXPIRY_DAYS}
        assert rule["Status"] == "Enabled"
    assert DELETED_AUDIO_EXPIRY_DAYS == 1
