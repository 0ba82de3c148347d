"""Acknowledging cdk-nag findings: always on the narrowest construct, always with the reason.

cdk-nag 3 is a CDK validation plugin (``Validations.of(app).add_plugins(AwsSolutionsChecks(app))``), and
acknowledgments are CDK's own ``Validations.of(construct).acknowledge(...)``. A rule that reports several findings
per resource (IAM5) is acknowledged one finding at a time, as ``RuleId[Finding]``.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge ``rule_id`` on ``scope`` and everything under it; ``reason`` says why it is acceptable."""
    if not reason.strip():
        raise ValueError(f"acknowledging {rule_id} needs a reason")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))
