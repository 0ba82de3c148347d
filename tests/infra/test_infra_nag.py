"""cdk-nag's AwsSolutions pack finds nothing unacknowledged, and every acknowledgment says why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks
from infra_synth import Synthesized


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
    assert acknowledgments, "expected the documented acknowledgments (L1, S1, APIG4)"
    for path, rule, reason in acknowledgments:
        assert len(reason.strip()) >= 40, f"{path}: {rule} needs a reason that explains itself"


def test_acknowledgments_are_narrow(synthesized: Synthesized) -> None:
    stack_path = synthesized.stack.node.path
    for path, rule, _ in _acknowledgments(synthesized.app):
        assert path not in ("", stack_path), f"{rule} is acknowledged for the whole stack, not a resource"
    rules = {rule.removeprefix("Annotation::") for _, rule, _ in _acknowledgments(synthesized.app)}
    assert rules == {"AwsSolutions-L1", "AwsSolutions-S1", "AwsSolutions-APIG4"}


def test_the_checks_really_run(tmp_path: Path) -> None:
    """A control: the same plugin fails synthesis on a bucket that breaks the rules."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Control")
    s3.Bucket(stack, "Careless")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(Exception, match="AwsSolutions-S10"):
        app.synth()
