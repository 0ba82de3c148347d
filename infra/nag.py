"""Acknowledging cdk-nag findings: always on the narrowest construct, always with the reason.

cdk-nag 3 is a CDK validation plugin (``Validations.of(app).add_plugins(AwsSolutionsChecks(app))``), and
acknowledgments are CDK's own ``Validations.of(construct).acknowledge(...)``. A rule that reports several findings
per resource (IAM5) is acknowledged one finding at a time, as ``RuleId[Finding]``.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge ``rule_id`` on ``scope`` and everything under it; ``reason`` says why it is acceptable."""
    if not reason.strip():
        raise ValueError(f"acknowledging {rule_id} needs a reason")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def flatten_reference(value: Any) -> str:
    """A resolved CloudFormation value as cdk-nag writes it in a finding id: ``{"Fn::GetAtt": ["Id", "Arn"]}`` is
    ``<Id.Arn>``, ``{"Ref": "Id"}`` is ``<Id>``, a ``Fn::Join`` joins its parts (cdk-nag's flattenCfnReference)."""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict):
        if "Fn::Join" in value:
            delimiter, items = value["Fn::Join"]
            return str(delimiter).join(flatten_reference(item) for item in items)
        if "Fn::Sub" in value:
            return flatten_reference(value["Fn::Sub"])
        if "Fn::GetAtt" in value:
            resource, attribute = value["Fn::GetAtt"]
            return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"
        if "Fn::ImportValue" in value:
            return flatten_reference(value["Fn::ImportValue"])
        if "Ref" in value:
            return f"<{flatten_reference(value['Ref'])}>"
    return json.dumps(value, separators=(",", ":"))


def wildcard_resource_finding(scope: IConstruct, resource: str) -> str:
    """The rule id of AwsSolutions-IAM5's finding for an IAM resource with a wildcard (``resource`` may hold tokens,
    e.g. an S3 object ARN under a prefix), to acknowledge that one finding and no other."""
    return f"AwsSolutions-IAM5[Resource::{flatten_reference(Stack.of(scope).resolve(resource))}]"
