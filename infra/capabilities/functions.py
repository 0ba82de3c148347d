"""One Lambda per function: the route manifest's and the event-driven ones (authorizer, workflow, ingest), each
with its own least-privilege role built from ``infra.constants.FUNCTION_ACCESS``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from earshot.adapters.dynamo_layout import TableSpec
from earshot.workflow import WORKFLOW
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
    INGEST_FUNCTION,
    INGEST_TIMEOUT_SEC,
    LAMBDA_MAX_TIMEOUT_SEC,
    LAYER_CATALOGS_DIR,
    LIST_BUCKET,
    METRICS_NAMESPACE,
    QUERY,
    SERVICE_NAME,
    START_EXECUTION,
    STATE_MACHINE_ARN_ENV,
    SWEEPER_FUNCTION,
    SWEEPER_TIMEOUT_SEC,
    WORKFLOW_FUNCTION,
    FunctionAccess,
    ObjectAccess,
    TableAccess,
)
from infra.nag import acknowledge, wildcard_resource_finding
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
        self._policies: dict[str, iam.PolicyDocument] = {}
        self.by_name: dict[str, lambda_.Function] = {name: self._function(name) for name in names}

    @property
    def authorizer(self) -> lambda_.Function:
        return self.by_name[AUTHORIZER_FUNCTION]

    @property
    def workflow(self) -> lambda_.Function:
        return self.by_name[WORKFLOW_FUNCTION]

    @property
    def ingest(self) -> lambda_.Function:
        return self.by_name[INGEST_FUNCTION]

    @property
    def sweeper(self) -> lambda_.Function:
        return self.by_name[SWEEPER_FUNCTION]

    @property
    def task_submitters(self) -> list[str]:
        """The functions that start the task workflow (``FunctionAccess.starts_tasks``)."""
        return [name for name in self.by_name if _access_for(name).starts_tasks]

    def allow_starting_tasks(self, state_machine: sfn.IStateMachine) -> None:
        """Give every task submitter the state machine's ARN and ``StartExecution`` on it, and nothing more.

        Done after the state machine exists, which itself needs the workflow function: the workflow function
        never starts tasks, so the references stay acyclic.
        """
        for name in self.task_submitters:
            if name == WORKFLOW_FUNCTION:
                raise ValueError("the workflow function cannot start tasks: its state machine invokes it")
            self.by_name[name].add_environment(STATE_MACHINE_ARN_ENV, state_machine.state_machine_arn)
            self._policies[name].add_statements(
                iam.PolicyStatement(
                    sid="StartTasks", actions=[START_EXECUTION], resources=[state_machine.state_machine_arn]
                )
            )

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
        # Kept, so allow_starting_tasks can add to it once the state machine exists.
        policy = self._policies[name] = iam.PolicyDocument(statements=self._statements(access, log_group))
        role = iam.Role(
            self,
            f"{pascal}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Earshot {self._config.stage} {name}: only what this function touches",
            inline_policies={"Access": policy},
        )
        self._acknowledge_object_prefixes(role, name, access.objects)
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
            timeout=Duration.seconds(timeout_sec(name)),
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
            # pydantic otherwise scans every installed distribution for plugins at the first model (~40 ms).
            "PYDANTIC_DISABLE_PLUGINS": "__all__",
            # glibc: keep multi-MB request buffers on the heap between requests instead of a fresh mmap (and
            # its page faults) per buffer: 4 MB requests drop from ~22 to ~13 ms of handler overhead.
            "MALLOC_MMAP_THRESHOLD_": "33554432",
            "MALLOC_TRIM_THRESHOLD_": "134217728",
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
        statements += [self._object_statement(grant) for grant in access.objects]
        if access.lists_bucket:
            statements.append(
                iam.PolicyStatement(sid="ListBucketKeys", actions=[LIST_BUCKET], resources=[self._bucket.bucket_arn])
            )
        if access.provider_credentials:
            statements += provider_credential_statements(self, catalog_path=self._catalog_path)
        return statements

    def _object_statement(self, grant: ObjectAccess) -> iam.PolicyStatement:
        if not grant.prefix.endswith("/") or "*" in grant.prefix:
            raise ValueError(f"object access is granted per key prefix ending in '/', not {grant.prefix!r}")
        return iam.PolicyStatement(
            sid=f"{pascal_id(grant.prefix.rstrip('/'))}Objects",
            actions=list(grant.actions),
            resources=[self._bucket.arn_for_objects(f"{grant.prefix}*")],
        )

    def _acknowledge_object_prefixes(self, role: iam.Role, name: str, grants: Sequence[ObjectAccess]) -> None:
        for grant in grants:
            acknowledge(
                role,
                wildcard_resource_finding(role, self._bucket.arn_for_objects(f"{grant.prefix}*")),
                f"{name} may {', '.join(grant.actions)} only under the {grant.prefix} prefix of the blob bucket; "
                "the keys below it are per upload or per task, so an object ARN cannot name them in advance.",
            )

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


def timeout_sec(name: str) -> int:
    """How long function ``name`` may run: the gateway's budget for the routes, longer for the event functions."""
    if name == AUTHORIZER_FUNCTION:
        return AUTHORIZER_TIMEOUT_SEC
    if name == WORKFLOW_FUNCTION:
        # One function runs every step, so it may run as long as the longest step's TimeoutSeconds.
        longest = max(step.timeout_sec for step in WORKFLOW.all_steps)
        if longest > LAMBDA_MAX_TIMEOUT_SEC:
            raise ValueError(f"a workflow step may take {longest} s; a Lambda function runs {LAMBDA_MAX_TIMEOUT_SEC} s")
        return longest
    if name == INGEST_FUNCTION:
        return INGEST_TIMEOUT_SEC
    if name == SWEEPER_FUNCTION:
        return SWEEPER_TIMEOUT_SEC
    return API_TIMEOUT_SEC


def _access_for(name: str) -> FunctionAccess:
    try:
        return FUNCTION_ACCESS[name]
    except KeyError:
        raise KeyError(
            f"function {name!r} has no entry in infra.constants.FUNCTION_ACCESS: decide what it may touch first"
        ) from None
