"""One Lambda per function in the route manifest, plus the authorizer, each with its own least-privilege role."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from earshot.adapters.dynamo_layout import TableSpec
from infra.capabilities.credentials import provider_credential_statements
from infra.capabilities.layers import ARCHITECTURE, RUNTIME, RUNTIME_CHOICE, Layers
from infra.config import StageConfig
from infra.constants import (
    API_TIMEOUT_SEC,
    AUTHORIZER_FUNCTION,
    AUTHORIZER_TIMEOUT_SEC,
    DEPLOYED_MAX_INLINE_BYTES,
    FUNCTION_ACCESS,
    FUNCTIONS_DIR,
    HANDLER,
    LAYER_CATALOGS_DIR,
    METRICS_NAMESPACE,
    QUERY,
    SERVICE_NAME,
    FunctionAccess,
    TableAccess,
)
from infra.nag import acknowledge
from infra.naming import pascal_id, resource_name


class Functions(Construct):
    """``functions/<name>/`` as Lambda functions: python3.13 on x86_64, the layers they need, JSON logs, own role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Sequence[str],
        config: StageConfig,
        layers: Layers,
        tables: Mapping[str, dynamodb.ITable],
        table_specs: Mapping[str, TableSpec],
        bucket: s3.IBucket,
        catalog_path: Path,
        functions_dir: Path = FUNCTIONS_DIR,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._layers = layers
        self._tables = tables
        self._table_specs = table_specs
        self._bucket = bucket
        self._catalog_path = catalog_path
        self._functions_dir = functions_dir
        self.by_name: dict[str, lambda_.Function] = {name: self._function(name) for name in names}

    @property
    def authorizer(self) -> lambda_.Function:
        return self.by_name[AUTHORIZER_FUNCTION]

    def _function(self, name: str) -> lambda_.Function:
        access = _access_for(name)
        layers = self._layers.for_function(name)  # core only, or core + audio + ffprobe
        code_dir = self._functions_dir / name
        if not (code_dir / "handler.py").is_file():
            raise FileNotFoundError(f"the manifest names function {name!r} but {code_dir}/handler.py does not exist")
        pascal = pascal_id(name)
        function_name = resource_name(self._config.stage, name)
        log_group = logs.LogGroup(
            self,
            f"{pascal}Logs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=self._config.log_retention,
            removal_policy=self._config.removal_policy,
        )
        role = iam.Role(
            self,
            f"{pascal}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Earshot {self._config.stage} {name}: only what this function touches",
            inline_policies={"Access": iam.PolicyDocument(statements=self._statements(access, log_group))},
        )
        timeout = AUTHORIZER_TIMEOUT_SEC if name == AUTHORIZER_FUNCTION else API_TIMEOUT_SEC
        function = lambda_.Function(
            self,
            pascal,
            function_name=function_name,
            description=f"Earshot {self._config.stage}: {name}",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(code_dir), exclude=["__pycache__", "*.pyc"]),
            layers=layers,
            memory_size=self._config.memory_mb[name],
            timeout=Duration.seconds(timeout),
            environment=self._environment(access),
            role=role,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
        )
        acknowledge(function, "AwsSolutions-L1", RUNTIME_CHOICE)
        return function

    def _environment(self, access: FunctionAccess) -> dict[str, str]:
        # Every function gets every table's and the bucket's name: the runtime builds all its adapters at start,
        # whether or not the function uses them. Names are not access; the role decides what may be touched.
        env = {
            "EARSHOT_RUNTIME": "aws",
            "EARSHOT_STAGE": self._config.stage,
            "EARSHOT_BUCKET_NAME": self._bucket.bucket_name,
            "EARSHOT_MAX_INLINE_BYTES": str(DEPLOYED_MAX_INLINE_BYTES),
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        }
        for logical, table in self._tables.items():
            env[self._table_specs[logical].env_var] = table.table_name
        if self._config.catalog_file is not None:
            env["EARSHOT_CATALOG"] = f"{LAYER_CATALOGS_DIR}/{self._config.catalog_file}"
        return env

    def _statements(self, access: FunctionAccess, log_group: logs.ILogGroup) -> list[iam.PolicyStatement]:
        statements = [
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        ]
        for grant in access.tables:
            statements += self._table_statements(grant)
        if access.provider_credentials:
            statements += provider_credential_statements(self, catalog_path=self._catalog_path)
        return statements

    def _table_statements(self, grant: TableAccess) -> list[iam.PolicyStatement]:
        if grant.table not in self._tables:
            raise KeyError(f"FUNCTION_ACCESS names table {grant.table!r}, which the layout does not define")
        table_arn = self._tables[grant.table].table_arn
        unknown = set(grant.queried_indexes) - {index.name for index in self._table_specs[grant.table].indexes}
        if unknown:
            raise KeyError(f"table {grant.table!r} has no index {sorted(unknown)[0]!r}")
        statements = []
        if grant.actions:
            statements.append(
                iam.PolicyStatement(
                    sid=f"{pascal_id(grant.table)}Table", actions=list(grant.actions), resources=[table_arn]
                )
            )
        if grant.queried_indexes:
            statements.append(
                iam.PolicyStatement(
                    sid=f"{pascal_id(grant.table)}Indexes",
                    actions=[QUERY],
                    resources=[f"{table_arn}/index/{index}" for index in grant.queried_indexes],
                )
            )
        return statements


def _access_for(name: str) -> FunctionAccess:
    try:
        return FUNCTION_ACCESS[name]
    except KeyError:
        raise KeyError(
            f"function {name!r} has no entry in infra.constants.FUNCTION_ACCESS: decide what it may touch first"
        ) from None
