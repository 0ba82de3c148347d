"""Read access to the upstream providers' credentials that the stage's model catalog references.

The catalog names where each upstream model's API key may live, in order (``secret:<name>`` in Secrets Manager,
``ssm:<name>`` in Parameter Store, ``env:NAME`` for local mode; ``{stage}`` is the stage; see
``earshot.adapters.credentials``). Deployed functions read only the ``secret:``/``ssm:`` ones, so ``env:``
references are left out here: no key ever goes into a function's environment or the template. The operator writes
the values; functions that call upstreams may read exactly the references in the catalog, and a model whose value
is not written yet is simply not live (a 400 before any charge), so the stack deploys without any key.
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


def credential_references(catalog_path: Path, *, stage: str) -> list[str]:
    """The distinct references a deployed ``stage`` reads for the catalog's upstream models, sorted.

    Raises
    ------
    ValueError
        For an upstream model with no ``secret:``/``ssm:`` reference: it could never be live on a deployed stage
        (its key would have to sit in the function's environment).
    """
    catalog = load_catalog(catalog_path)
    references: set[str] = set()
    for model in catalog.models:
        deployed = [ref.replace("{stage}", stage) for ref in model.credentials if not ref.startswith("env:")]
        if model.upstream and not deployed:
            raise ValueError(
                f"{catalog_path.name}: model {model.sku!r} names only env: credentials, which would put a provider key "
                "in the function's environment; deployed stages use secret:<name> (Secrets Manager) or ssm:<name> "
                "(Parameter Store)"
            )
        references.update(deployed)
    return sorted(references)


def provider_credential_statements(scope: Construct, *, catalog_path: Path, stage: str) -> list[iam.PolicyStatement]:
    """One read statement per kind of reference, on exactly the secrets and parameters the catalog names."""
    stack = Stack.of(scope)
    secrets: list[str] = []
    parameters: list[str] = []
    for reference in credential_references(catalog_path, stage=stage):
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
