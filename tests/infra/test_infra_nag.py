"""cdk-nag's AwsSolutions and Serverless packs find nothing unacknowledged, and every acknowledgment says why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks
from infra_synth import Synthesized, cdk_json_context

from infra.app import build_app
from infra.constants import AUDIO_LAYER, CORE_LAYER, FFPROBE_LAYER, TRACED_FUNCTIONS
from infra.naming import pascal_id, stack_name


def _acknowledgments(app: App) -> list[tuple[str, str, str]]:
    """(construct path, rule id, reason) for every acknowledgment in the app."""
    found = []
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                data: dict[str, Any] = entry.data
                found += [(construct.node.path, rule, reason) for rule, reason in data.items()]
    return found


def test_validation_report_has_no_findings(synthesized: Synthesized) -> None:
    report = json.loads((synthesized.assembly_dir / "validation-report.json").read_text())
    findings = [
        (plugin["pluginName"], violation["ruleName"], violation["severity"])
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
    ]
    assert findings == []


def test_every_acknowledgment_has_a_specific_reason(synthesized: Synthesized) -> None:
    acknowledgments = _acknowledgments(synthesized.app)
    assert acknowledgments, "expected the documented acknowledgments (L1, S1, APIG4, IAM4/IAM5 findings)"
    for path, rule, reason in acknowledgments:
        assert len(reason.strip()) >= 40, f"{path}: {rule} needs a reason that explains itself"


def test_acknowledgments_are_narrow(synthesized: Synthesized) -> None:
    stack_path = synthesized.stack.node.path
    for path, rule, _ in _acknowledgments(synthesized.app):
        assert path not in ("", stack_path), f"{rule} is acknowledged for the whole stack, not a resource"
    rules = {rule.removeprefix("Annotation::") for _, rule, _ in _acknowledgments(synthesized.app)}
    whole_rules = {rule for rule in rules if "[" not in rule}
    assert whole_rules == {
        "AwsSolutions-L1",
        "AwsSolutions-S1",
        "AwsSolutions-APIG4",
        "AwsSolutions-SQS3",  # the two operator queues are themselves dead-letter destinations
        "Serverless-LambdaLatestVersion",  # the same runtime choice as L1
        "Serverless-LambdaDLQ",  # synchronously invoked functions; ingest has an on-failure destination
        "Serverless-LambdaTracing",  # the untraced API functions (infra.constants.TRACED_FUNCTIONS)
        "Serverless-SQSRedrivePolicy",  # the operator queues have no consumer to redrive from
        "Serverless-EventBusDLQ",  # the unexpected-executions rule's target is itself the operator queue
    }
    # IAM4 and IAM5 only ever one finding at a time, never the whole rule.
    findings = rules - whole_rules
    assert {rule.split("[", 1)[0] for rule in findings} == {"AwsSolutions-IAM4", "AwsSolutions-IAM5"}


def test_wildcards_are_acknowledged_only_where_they_are_unavoidable(synthesized: Synthesized) -> None:
    stack = synthesized.stack.node.path
    by_path: dict[str, set[str]] = {}
    for path, rule, _ in _acknowledgments(synthesized.app):
        rule = rule.removeprefix("Annotation::")
        if "[" in rule:
            by_path.setdefault(path.removeprefix(f"{stack}/"), set()).add(rule)
    # Function roles: objects under one key prefix of the blob bucket, each prefix its own finding.
    object_prefixes = {
        path: {rule.split("/", 1)[1].removesuffix("*]") for rule in rules if "StorageBlobs" in rule}
        for path, rules in by_path.items()
        if path.startswith("Functions/")
    }
    for path, rules in by_path.items():
        if path.startswith("Functions/"):
            rules = rules - {"AwsSolutions-IAM5[Resource::*]"}  # X-Ray, checked below
            assert all(rule.startswith("AwsSolutions-IAM5[Resource::<StorageBlobs") for rule in rules), path
    assert object_prefixes["Functions/TasksRole"] == {"tasks/"}
    assert object_prefixes["Functions/UploadsRole"] == {"uploads/", "inbox/"}
    assert object_prefixes["Functions/WorkflowRole"] == {"tasks/", "inbox/"}
    assert "Functions/ModelsRole" not in object_prefixes
    # The state machine role: CloudWatch Logs delivery and X-Ray, which take no resource ARN.
    assert by_path["Tasks/StateMachine/Role"] == {"AwsSolutions-IAM5[Resource::*]"}
    # The traced functions' roles: X-Ray's PutTraceSegments and PutTelemetryRecords, which take no resource ARN.
    for name in TRACED_FUNCTIONS:
        assert "AwsSolutions-IAM5[Resource::*]" in by_path[f"Functions/{pascal_id(name)}Role"]
    # CDK's bucket-notifications custom resource: its managed basic-execution policy only.
    (handler,) = [path for path in by_path if path.startswith("BucketNotificationsHandler")]
    assert by_path[handler] == {
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]"
    }


def test_the_checks_really_run(tmp_path: Path) -> None:
    """A control: the same plugin fails synthesis on a bucket that breaks the rules."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Control")
    s3.Bucket(stack, "Careless")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(Exception, match="AwsSolutions-S10"):
        app.synth()


def test_the_app_runs_the_serverless_pack_too(stub_layers: dict[str, Path], tmp_path: Path) -> None:
    """A control: the app as `make synth` builds it fails on a queue with no redrive policy (a Serverless rule that
    AwsSolutions does not have)."""
    app = build_app(
        context={**cdk_json_context(), "stage": "dev"},
        core_layer_dir=stub_layers[CORE_LAYER],
        audio_layer_dir=stub_layers[AUDIO_LAYER],
        ffprobe_layer_dir=stub_layers[FFPROBE_LAYER],
        outdir=str(tmp_path),
    )
    stack = app.node.find_child(stack_name("dev"))
    assert isinstance(stack, Stack)
    sqs.Queue(stack, "Careless", enforce_ssl=True)
    with pytest.raises(Exception, match="Serverless-SQSRedrivePolicy"):
        app.synth()
