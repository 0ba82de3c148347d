"""The async task workflow as deployed: a Standard state machine compiled from ``earshot.workflow.WORKFLOW``, logged
and traced, whose every step invokes the one workflow function, and the S3 event that starts uploads' tasks."""

from __future__ import annotations

import json
from typing import Any

from infra_synth import RETENTION_DAYS, Synthesized

from earshot.blob_layout import INBOX_PREFIX
from earshot.inference import ENGINE_STEPS
from earshot.workflow import FAILED_STATE, FAILED_STATE_ERROR, REFUND_STEP, WORKFLOW, to_state_machine_definition
from infra.capabilities.functions import step_function, timeout_sec
from infra.constants import STATE_MACHINE_ARN_ENV


def _state_machine(synth: Synthesized) -> tuple[str, dict[str, Any]]:
    (machine,) = synth.of_type("AWS::StepFunctions::StateMachine").items()
    return machine[0], machine[1]["Properties"]


def _definition(synth: Synthesized) -> dict[str, Any]:
    """The ASL with every CloudFormation reference written as ``<LogicalId.Attribute>``."""
    _, props = _state_machine(synth)
    definition = props["DefinitionString"]
    if isinstance(definition, dict):
        parts = definition["Fn::Join"][1]
        definition = "".join(part if isinstance(part, str) else "<{}.{}>".format(*part["Fn::GetAtt"]) for part in parts)
    parsed: dict[str, Any] = json.loads(definition)
    return parsed


def _workflow_arn(synth: Synthesized) -> str:
    return f"<{synth.function_logical_id('workflow')}.Arn>"


def _task_states(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name, state in states.items():
        if state["Type"] == "Task":
            found[name] = state
        elif state["Type"] == "Map":
            found.update(_task_states(state["ItemProcessor"]["States"]))
    return found


def _tasks(synth: Synthesized) -> dict[str, dict[str, Any]]:
    """Every Task state, the Map's iteration included."""
    return _task_states(_definition(synth)["States"])


def test_one_standard_state_machine_compiled_from_the_workflow(synthesized: Synthesized) -> None:
    _, props = _state_machine(synthesized)
    assert props["StateMachineType"] == "STANDARD"
    assert props["StateMachineName"] == f"earshot-{synthesized.stage}-tasks"
    definition = _definition(synthesized)
    assert definition["StartAt"] == WORKFLOW.steps[0].name
    assert definition["TimeoutSeconds"] == WORKFLOW.timeout_sec
    assert set(_tasks(synthesized)) == {step.name for step in WORKFLOW.all_steps}
    assert definition["States"][FAILED_STATE]["Type"] == "Fail"


def test_every_step_invokes_its_function_with_its_name(synthesized: Synthesized) -> None:
    inference_arn = f"<{synthesized.function_logical_id('inference')}.Arn>"
    for name, state in _tasks(synthesized).items():
        assert state["Resource"].endswith(":states:::lambda:invoke")
        # The engine steps run in the inference function (the image with the models), as a task; the rest in the
        # workflow function.
        expected = inference_arn if name in ENGINE_STEPS else _workflow_arn(synthesized)
        assert state["Parameters"]["FunctionName"] == expected, name
        assert state["Parameters"]["Payload"] == {"step": name, "state.$": "$"}
    assert set(ENGINE_STEPS) == {"plan_chunks", "run_chunk", "merge_chunks"}


def test_tasks_invoke_lambda_in_the_partition_the_stack_is_deployed_to(synthesized: Synthesized) -> None:
    _, props = _state_machine(synthesized)
    assert props["DefinitionSubstitutions"] == {"Partition": {"Ref": "AWS::Partition"}}
    for name, state in _tasks(synthesized).items():
        assert state["Resource"] == "arn:${Partition}:states:::lambda:invoke", name
        assert not state["Resource"].startswith("arn:aws:"), name


def test_every_task_has_a_timeout_and_jittered_retries_on_lambda_service_errors(synthesized: Synthesized) -> None:
    timeouts = {step.name: step.timeout_sec for step in WORKFLOW.all_steps}
    for name, state in _tasks(synthesized).items():
        assert state["TimeoutSeconds"] == timeouts[name]
        assert state["Retry"], name
        assert all(retrier["JitterStrategy"] == "FULL" for retrier in state["Retry"]), name
        retried = {error for retrier in state["Retry"] for error in retrier["ErrorEquals"]}
        assert {"Lambda.ServiceException", "Lambda.TooManyRequestsException"} <= retried, name


def test_every_step_but_the_refund_is_caught_and_refunded(synthesized: Synthesized) -> None:
    states = _definition(synthesized)["States"]
    for name, state in states.items():
        if state["Type"] not in ("Task", "Map"):
            continue
        if name == REFUND_STEP:
            assert "Catch" not in state
            assert state["Next"] == FAILED_STATE
            continue
        assert state["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": REFUND_STEP}]


def test_each_step_function_outlasts_its_longest_step(synthesized: Synthesized) -> None:
    for function in ("workflow", "inference"):
        steps = [state for name, state in _tasks(synthesized).items() if step_function(name) == function]
        longest = max(state["TimeoutSeconds"] for state in steps)
        props = synthesized.resources[synthesized.function_logical_id(function)]["Properties"]
        assert props["Timeout"] == longest == timeout_sec(function) <= 900  # Lambda's maximum


def test_executions_are_logged_in_full_and_traced(synthesized: Synthesized) -> None:
    _, props = _state_machine(synthesized)
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is False  # prompts and results stay in the task store
    (destination,) = logging["Destinations"]
    log_group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    log_group = synthesized.resources[log_group_id]["Properties"]
    # Under the vended-logs prefix, and ending in the UUID of the stack's creation, so that a group retained from a
    # deleted or rolled-back stack never blocks the next one's name.
    prefix, suffix = log_group["LogGroupName"]["Fn::Join"][1]
    assert prefix == f"/aws/vendedlogs/states/earshot-{synthesized.stage}-tasks-"
    assert suffix == {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}
    assert log_group["RetentionInDays"] == RETENTION_DAYS[synthesized.config.log_retention.value]


def _state_machine_statements(synth: Synthesized) -> list[dict[str, Any]]:
    _, props = _state_machine(synth)
    role_id = props["RoleArn"]["Fn::GetAtt"][0]
    role = synth.resources[role_id]["Properties"]
    assert "ManagedPolicyArns" not in role
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "states.amazonaws.com"}
    statements = [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]
    for policy in synth.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def test_the_state_machine_may_invoke_its_step_functions_and_nothing_else(dev: Synthesized) -> None:
    statements = _state_machine_statements(dev)
    invokes = [s for s in statements if "lambda:InvokeFunction" in json.dumps(s["Action"])]
    (invoke,) = invokes
    assert invoke["Sid"] == "InvokeWorkflowSteps" and invoke["Action"] == "lambda:InvokeFunction"
    assert sorted(ref["Fn::GetAtt"][0] for ref in invoke["Resource"]) == sorted(
        [dev.function_logical_id("workflow"), dev.function_logical_id("inference")]
    )
    assert all(ref["Fn::GetAtt"][1] == "Arn" for ref in invoke["Resource"])
    # The rest is what logging and tracing need, on "*" because those APIs take no resource ARN.
    for statement in statements:
        if statement in invokes:
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert {action.split(":")[0] for action in actions} <= {"logs", "xray"}, statement
        assert not any(action.endswith(":*") or action == "*" for action in actions)


def test_submitting_functions_get_the_state_machine_and_the_workflow_function_does_not(dev: Synthesized) -> None:
    machine_id, _ = _state_machine(dev)
    for name in ("transcriptions", "understand", "extract", "understanding", "ingest"):
        env = dev.resources[dev.function_logical_id(name)]["Properties"]["Environment"]["Variables"]
        assert env[STATE_MACHINE_ARN_ENV] == {"Ref": machine_id}, name
    for name in ("workflow", "tasks", "uploads", "authorizer", "account", "models", "openapi"):
        env = dev.resources[dev.function_logical_id(name)]["Properties"]["Environment"]["Variables"]
        assert STATE_MACHINE_ARN_ENV not in env, name


def test_only_unexpected_execution_endings_raise_an_alarm(synthesized: Synthesized) -> None:
    machine_id, _ = _state_machine(synthesized)
    # No alarm on ExecutionsFailed: a routine failure (refunded by refund_and_fail, ended in TaskFailed) counts there.
    alarms = [a["Properties"] for a in synthesized.of_type("AWS::CloudWatch::Alarm").values()]
    assert not [a for a in alarms if a.get("Namespace") == "AWS/States"]
    (rule,) = [r for r in synthesized.of_type("AWS::Events::Rule").values() if "EventPattern" in r["Properties"]]
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": machine_id}]
    assert pattern["detail"]["$or"] == [
        {"status": ["TIMED_OUT", "ABORTED"]},
        {"status": ["FAILED"], "error": [{"anything-but": [FAILED_STATE_ERROR]}]},
    ]
    # The events go to a queue an operator reads; the alarm fires while it holds any.
    (target,) = rule["Properties"]["Targets"]
    queue_id = target["Arn"]["Fn::GetAtt"][0]
    assert synthesized.resources[queue_id]["Type"] == "AWS::SQS::Queue"
    (alarm,) = [a for a in alarms if a["AlarmName"] == f"earshot-{synthesized.stage}-task-executions-unexpected"]
    assert alarm["Namespace"] == "AWS/SQS" and alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    assert alarm["Threshold"] == 1 and alarm["AlarmActions"]


def test_a_long_recordings_chunks_run_in_a_map_state_on_the_inference_function(synthesized: Synthesized) -> None:
    from earshot.workflow import CHUNK_STEP, MAP_MAX_CONCURRENCY

    states = _definition(synthesized)["States"]
    (chunks,) = WORKFLOW.maps
    state = states[chunks.name]
    assert state["Type"] == "Map" and state["ItemsPath"] == "$.chunks" and state["ResultPath"] is None
    assert state["MaxConcurrency"] == MAP_MAX_CONCURRENCY
    assert state["ItemProcessor"]["ProcessorConfig"] == {"Mode": chunks.mode}
    assert "chunk.$" in state["ItemSelector"] and "options.$" not in state["ItemSelector"]
    iteration = state["ItemProcessor"]["States"][CHUNK_STEP]
    assert iteration["Parameters"]["FunctionName"] == f"<{synthesized.function_logical_id('inference')}.Arn>"
    assert [states[n]["Next"] for n in ("reserve", "plan_chunks", chunks.name)] == [
        "plan_chunks",
        chunks.name,
        "merge_chunks",
    ]
    # The inference function's reservation leaves room for sync requests beside one task's chunks.
    reserved = synthesized.config.reserved_concurrency.get("inference")
    assert reserved is None or reserved > MAP_MAX_CONCURRENCY


def test_a_distributed_map_may_start_and_follow_its_own_child_executions() -> None:
    from dataclasses import replace

    from aws_cdk import App, RemovalPolicy, Stack
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_logs as logs
    from aws_cdk.assertions import Template

    from infra.capabilities.workflow import TaskWorkflow

    (chunks,) = WORKFLOW.maps
    distributed = replace(chunks, mode="DISTRIBUTED")
    flow = replace(WORKFLOW, steps=tuple(distributed if s is chunks else s for s in WORKFLOW.steps))
    stack = Stack(App(), "Distributed")
    functions = {
        name: lambda_.Function.from_function_arn(stack, name, f"arn:aws:lambda:us-east-1:123456789012:function:{name}")
        for name in ("workflow", "inference")
    }
    TaskWorkflow(
        stack,
        "Tasks",
        stage="dev",
        functions=functions,
        log_retention=logs.RetentionDays.ONE_WEEK,
        removal_policy=RemovalPolicy.DESTROY,
        workflow=flow,
    )
    template = Template.from_stack(stack).to_json()

    statements = [
        statement
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy"
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]
    by_sid = {statement.get("Sid"): statement for statement in statements}
    assert by_sid["RunMapChildExecutions"]["Action"] == "states:StartExecution"
    assert "stateMachine:earshot-dev-tasks" in json.dumps(by_sid["RunMapChildExecutions"]["Resource"])
    assert sorted(by_sid["FollowMapChildExecutions"]["Action"]) == ["states:DescribeExecution", "states:StopExecution"]
    assert "execution:earshot-dev-tasks/*" in json.dumps(by_sid["FollowMapChildExecutions"]["Resource"])


def test_the_workflow_fails_a_task_on_purpose_with_the_error_the_alarm_ignores() -> None:
    definition = to_state_machine_definition(dict.fromkeys((s.name for s in WORKFLOW.all_steps), "arn"))
    assert definition["States"][FAILED_STATE]["Error"] == FAILED_STATE_ERROR


# --- uploads that start processing by themselves --------------------------------------------------------------


def _blob_bucket_id(synth: Synthesized) -> str:
    env = synth.resources[synth.function_logical_id("ingest")]["Properties"]["Environment"]["Variables"]
    bucket_id: str = env["EARSHOT_BUCKET_NAME"]["Ref"]
    return bucket_id


def test_objects_created_under_the_inbox_invoke_the_ingest_function(synthesized: Synthesized) -> None:
    (notifications,) = synthesized.of_type("Custom::S3BucketNotifications").values()
    props = notifications["Properties"]
    assert props["BucketName"] == {"Ref": _blob_bucket_id(synthesized)}
    config = props["NotificationConfiguration"]
    assert set(config) == {"LambdaFunctionConfigurations"}
    (target,) = config["LambdaFunctionConfigurations"]
    assert target["Events"] == ["s3:ObjectCreated:*"]
    assert target["Filter"] == {"Key": {"FilterRules": [{"Name": "prefix", "Value": INBOX_PREFIX}]}}
    assert target["LambdaFunctionArn"] == {"Fn::GetAtt": [synthesized.function_logical_id("ingest"), "Arn"]}


def test_only_this_bucket_may_invoke_the_ingest_function(synthesized: Synthesized) -> None:
    ingest = {"Fn::GetAtt": [synthesized.function_logical_id("ingest"), "Arn"]}
    s3_permissions = [
        p["Properties"]
        for p in synthesized.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "s3.amazonaws.com"
    ]
    assert s3_permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": ingest,
            "Principal": "s3.amazonaws.com",
            "SourceAccount": {"Ref": "AWS::AccountId"},
            "SourceArn": {"Fn::GetAtt": [_blob_bucket_id(synthesized), "Arn"]},
        }
    ]


def test_task_ids_can_derive_from_object_versions(synthesized: Synthesized) -> None:
    props = synthesized.resources[_blob_bucket_id(synthesized)]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
