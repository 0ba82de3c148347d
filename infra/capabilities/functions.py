"""One Lambda per function: the route manifest's and the event-driven ones (authorizer, workflow, ingest), each
with its own least-privilege role built from ``infra.constants.FUNCTION_ACCESS``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aws_cdk import Duration, IgnoreMode, Size
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from earshot.adapters.dynamo_layout import TableSpec
from earshot.inference import ENGINE_STEPS
from earshot.limits import ephemeral_storage_mb
from earshot.workflow import WORKFLOW
from infra.capabilities.credentials import provider_credential_statements
from infra.capabilities.layers import ARCHITECTURE, RUNTIME, RUNTIME_CHOICE, Layers
from infra.config import StageConfig
from infra.constants import (
    API_TIMEOUT_SEC,
    AUTHORIZER_FUNCTION,
    AUTHORIZER_TIMEOUT_SEC,
    DEPLOYED_MAX_INLINE_BYTES,
    ENGINE_THREADS_ENV,
    FUNCTION_ACCESS,
    FUNCTIONS_DIR,
    HANDLER,
    IMAGE_FUNCTIONS,
    INFERENCE_DOCKERFILE,
    INFERENCE_FUNCTION,
    INFERENCE_FUNCTION_ENV,
    INFERENCE_VCPUS,
    INGEST_FUNCTION,
    INGEST_TIMEOUT_SEC,
    LAMBDA_MAX_TIMEOUT_SEC,
    LAYER_CATALOGS_DIR,
    LIST_BUCKET,
    METRICS_NAMESPACE,
    QUERY,
    REPO_ROOT,
    SERVICE_NAME,
    STAGES_UPLOADS,
    START_EXECUTION,
    STATE_MACHINE_ARN_ENV,
    SWEEPER_FUNCTION,
    SWEEPER_TIMEOUT_SEC,
    TRACED_FUNCTIONS,
    UNTRACED_REASON,
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
        image_context_dir: Path = REPO_ROOT,
    ) -> None:
        super().__init__(scope, construct_id)
        self._image_context_dir = image_context_dir
        self._config = config
        self._layers = layers
        self._tables = tables
        self._table_specs = table_specs
        self._bucket = bucket
        self._catalog_path = catalog_path
        self._functions_dir = functions_dir
        self._policies: dict[str, iam.PolicyDocument] = {}
        self.by_name: dict[str, lambda_.Function] = {}
        # The inference function first: the functions that invoke it need its name and ARN.
        for name in sorted(names, key=lambda name: name not in IMAGE_FUNCTIONS):
            self.by_name[name] = self._function(name)

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
    def inference(self) -> lambda_.Function:
        return self.by_name[INFERENCE_FUNCTION]

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
        code_dir = self._functions_dir / name
        if not (code_dir / "handler.py").is_file():
            raise FileNotFoundError(f"the manifest names function {name!r} but {code_dir}/handler.py does not exist")
        pascal = pascal_id(name)
        function_name = resource_name(self._config.stage, name)
        # Unnamed: CloudFormation picks a unique name, so a retained group left by a rolled-back create or a deleted
        # stack never collides with the next one ("already exists"). The function logs there by its logging config.
        log_group = logs.LogGroup(
            self,
            f"{pascal}Logs",
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
        common: dict[str, Any] = {
            "function_name": function_name,
            "description": f"Earshot {self._config.stage}: {name}",
            "architecture": ARCHITECTURE,
            "memory_size": self._config.memory_mb[name],
            "timeout": Duration.seconds(timeout_sec(name)),
            "reserved_concurrent_executions": self._config.reserved_concurrency.get(name),
            "tracing": lambda_.Tracing.ACTIVE if name in TRACED_FUNCTIONS else None,
            "environment": self._environment(name, access),
            "role": role,
            "log_group": log_group,
            "logging_format": lambda_.LoggingFormat.JSON,
            "application_log_level_v2": lambda_.ApplicationLogLevel.INFO,
            "system_log_level_v2": lambda_.SystemLogLevel.WARN,
        }
        if name in STAGES_UPLOADS:
            # An upload of up to MAX_UPLOAD_BYTES staged in /tmp beside the unpacked ffprobe (earshot.limits).
            common["ephemeral_storage_size"] = Size.mebibytes(ephemeral_storage_mb())
        function: lambda_.Function
        if name in IMAGE_FUNCTIONS:
            function = lambda_.DockerImageFunction(self, pascal, code=self._image_code(), **common)
        else:
            function = lambda_.Function(
                self,
                pascal,
                runtime=RUNTIME,
                handler=HANDLER,
                code=lambda_.Code.from_asset(str(code_dir), exclude=["__pycache__", "*.pyc"]),
                layers=self._layers.for_function(name),  # core only, core + ffprobe, or core + audio + ffprobe
                **common,
            )
            acknowledge(function, "AwsSolutions-L1", RUNTIME_CHOICE)
            acknowledge(function, "Serverless-LambdaLatestVersion", RUNTIME_CHOICE)
        acknowledge(function, "Serverless-LambdaDLQ", _dead_letter_reason(name))
        if name in TRACED_FUNCTIONS:
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::*]",
                "Active X-Ray tracing: CDK grants xray:PutTraceSegments and xray:PutTelemetryRecords, which have no "
                "resource-level permissions.",
            )
        else:
            acknowledge(function, "Serverless-LambdaTracing", UNTRACED_REASON)
        return function

    def _image_code(self) -> lambda_.DockerImageCode:
        """The inference image as a CDK asset: staged and hashed at synth (the /.dockerignore allow-list decides what),
        built and pushed by the CDK CLI at deploy. Synthesis never runs Docker."""
        return lambda_.DockerImageCode.from_image_asset(
            str(self._image_context_dir),
            file=INFERENCE_DOCKERFILE,
            platform=ecr_assets.Platform.LINUX_AMD64,
            ignore_mode=IgnoreMode.DOCKER,
        )

    def _environment(self, name: str, access: FunctionAccess) -> dict[str, str]:
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
        if access.invokes_inference:
            env[INFERENCE_FUNCTION_ENV] = self.inference.function_name
        if name in IMAGE_FUNCTIONS:
            env[ENGINE_THREADS_ENV] = str(INFERENCE_VCPUS)
            if self._config.catalog_file is not None:  # the image installs earshot into its task root
                env["EARSHOT_CATALOG"] = f"/var/task/earshot/catalogs/{self._config.catalog_file}"
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
            statements += provider_credential_statements(
                self, catalog_path=self._catalog_path, stage=self._config.stage
            )
        if access.invokes_inference:
            statements.append(
                iam.PolicyStatement(
                    sid="InvokeInference", actions=["lambda:InvokeFunction"], resources=[self.inference.function_arn]
                )
            )
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


def step_function(step: str) -> str:
    """The function the state machine invokes for ``step``: the inference function for the engine steps."""
    return INFERENCE_FUNCTION if step in ENGINE_STEPS else WORKFLOW_FUNCTION


def _dead_letter_reason(name: str) -> str:
    """Why function ``name`` has no DeadLetterConfig, which only ever receives failed *asynchronous* invocations."""
    if name == INGEST_FUNCTION:
        return (
            "S3 invokes ingest asynchronously; its failed events go to an on-failure destination (EventInvokeConfig, "
            "the UploadIngest construct's FailedEvents queue, alarmed), which keeps the error with the event, rather "
            "than to a DeadLetterConfig."
        )
    if name == INFERENCE_FUNCTION:
        return (
            "The inference function is invoked synchronously, by the API functions (which refund a failed call) and "
            "by the state machine (which retries and catches a failed step): a DLQ would never receive anything."
        )
    if name == SWEEPER_FUNCTION:
        return (
            "EventBridge invokes the sweeper on a schedule; a failed run loses nothing: the next run (minutes later) "
            "sweeps the same holds and tasks, and its errors show on the function's Errors alarm and dashboard."
        )
    if name == WORKFLOW_FUNCTION:
        return (
            "Step Functions invokes the workflow function synchronously; a failed step is retried and caught by the "
            "state machine (refund_and_fail), and an execution that ends unexpectedly lands in the monitoring "
            "construct's UnexpectedTaskExecutions queue. A DLQ would never receive anything."
        )
    return (
        f"{name} is invoked synchronously (API Gateway or its authorizer): its caller gets the error at once, and a "
        "dead-letter queue only ever receives failed asynchronous invocations."
    )


def timeout_sec(name: str) -> int:
    """How long function ``name`` may run: the gateway's budget for the routes, longer for the event functions."""
    if name == AUTHORIZER_FUNCTION:
        return AUTHORIZER_TIMEOUT_SEC
    if name in (WORKFLOW_FUNCTION, INFERENCE_FUNCTION):
        # A function may run as long as the longest step it runs (its Task state's TimeoutSeconds).
        longest = max(step.timeout_sec for step in WORKFLOW.all_steps if step_function(step.name) == name)
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
