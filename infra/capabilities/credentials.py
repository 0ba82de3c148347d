"""Read access to the upstream providers' credentials that the stage's model catalog references.

The catalog names where each upstream model's API key lives (``secret:<name>`` in Secrets Manager or
``ssm:<name>`` in Parameter Store; see ``earshot.adapters.credentials``). The operator writes the values; the
template never holds one, and functions that call upstreams may read exactly the references in the catalog.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from earshot.catalog import load_catalog
from infra.constants import SECRET_READ_ACTIONS, SSM_PARAMETER_READ_ACTIONS

# Secrets Manager appends "-" and six random characters to a secret's name in its ARN.
_SECRET_ARN_SUFFIX = "-??????"


def credential_references(catalog_path: Path) -> list[str]:
    """The distinct credential references of the catalog's upstream models, sorted."""
    catalog = load_catalog(catalog_path)
    return sorted({model.credential for model in catalog.models if model.credential})


def provider_credential_statements(scope: Construct, *, catalog_path: Path) -> list[iam.PolicyStatement]:
    """One read statement per kind of reference, on exactly the secrets and parameters the catalog names.

    Raises
    ------
    ValueError
        For an ``env:`` reference: a deployed function would need the key itself in its environment.
    """
    stack = Stack.of(scope)
    secrets: list[str] = []
    parameters: list[str] = []
    for reference in credential_references(catalog_path):
        kind, _, name = reference.partition(":")
        if kind == "secret":
            secrets.append(
                stack.format_arn(
                    service="secretsmanager",
                    resource="secret",
                    resource_name=f"{name}{_SECRET_ARN_SUFFIX}",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            )
        elif kind == "ssm":
            parameters.append(
                stack.format_arn(
                    service="ssm",
                    resource="parameter",
                    resource_name=name.removeprefix("/"),
                    arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                )
            )
        else:
            raise ValueError(
                f"{catalog_path.name}: credential {reference!r} would put a provider key in the function's "
                "environment; deployed stages use secret:<name> (Secrets Manager) or ssm:<name> (Parameter Store)"
            )
    statements = []
    if secrets:
        statements.append(
            iam.PolicyStatement(sid="ReadProviderSecrets", actions=list(SECRET_READ_ACTIONS), resources=secrets)
        )
    if parameters:
        statements.append(
            iam.PolicyStatement(
                sid="ReadProviderParameters", actions=list(SSM_PARAMETER_READ_ACTIONS), resources=parameters
            )
        )
    return statements
