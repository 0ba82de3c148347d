"""The async task workflow as a Step Functions Standard state machine, compiled from ``earshot.workflow.WORKFLOW``.

The definition is not written here: ``to_state_machine_definition`` turns the one workflow definition (steps,
timeouts, retriers with full jitter, catch -> ``refund_and_fail``, the Map state that runs a long recording's chunks)
into Amazon States Language. The engine steps (planning chunks, each chunk, the merge) invoke the inference function
(the container image with the models), every other step the ``workflow`` function;
the payload names the step (``earshot.workflow.dispatch_step``). The Task
states' partition is left as ``${Partition}`` for CloudFormation to fill in, so one template deploys to any partition
(aws, aws-cn, aws-us-gov).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import Aws, Fn, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from earshot.workflow import WORKFLOW, Workflow, to_state_machine_definition
from infra.capabilities.functions import step_function
from infra.nag import acknowledge
from infra.naming import resource_name

# The placeholder the definition carries for the partition, and the definition substitution that resolves it.
_PARTITION_KEY = "Partition"


def stack_creation_id() -> str:
    """The UUID at the end of the stack's ARN (``arn:...:stack/<name>/<uuid>``): new each time the stack is created,
    stable across its updates."""
    return Fn.select(2, Fn.split("/", Aws.STACK_ID))


class TaskWorkflow(Construct):
    """The state machine, its execution log group, and a role that may invoke the step functions only."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        functions: Mapping[str, lambda_.IFunction],
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        workflow: Workflow = WORKFLOW,
    ) -> None:
        super().__init__(scope, construct_id)
        name = resource_name(stage, "tasks")
        # Under /aws/vendedlogs/: Step Functions delivers logs through CloudWatch Logs' vended-log delivery, and
        # this prefix keeps the account's log resource policy from growing with every log group. The name ends in
        # the stack's own id (a UUID per stack creation), so a group retained from a deleted or rolled-back stack
        # never blocks the next one with "already exists".
        self.log_group = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=f"/aws/vendedlogs/states/{name}-{stack_creation_id()}",
            retention=log_retention,
            removal_policy=removal_policy,
        )
        # Each step invokes the function that runs it: the engine steps the inference function, the rest the
        # workflow function (infra.capabilities.functions.step_function).
        invoked = {step.name: functions[step_function(step.name)] for step in workflow.all_steps}
        definition = to_state_machine_definition(
            {name: function.function_arn for name, function in invoked.items()},
            workflow=workflow,
            partition=f"${{{_PARTITION_KEY}}}",
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(json.dumps(definition)),
            definition_substitutions={_PARTITION_KEY: Aws.PARTITION},
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ALL,
                # Every event, without the state itself: it carries callers' prompts and results, which belong in
                # the task store (with its TTL and owner checks), not in logs.
                include_execution_data=False,
            ),
            tracing_enabled=True,
            # Deleted with the stack whatever the stage: it holds no data (tasks are in DynamoDB, executions' logs
            # in the retained log group), and a retained one would block its own name on the next deploy.
        )
        # The definition came in as a string, so CDK cannot see what it invokes: grant exactly that, the unqualified
        # function ARNs (no ":*" for versions and aliases, which the definition never names).
        targets = {id(function): function for function in invoked.values()}.values()
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="InvokeWorkflowSteps",
                actions=["lambda:InvokeFunction"],
                resources=[function.function_arn for function in targets],
            )
        )
        if any(step.mode == "DISTRIBUTED" for step in workflow.maps):
            self._allow_child_executions(name)
        self._acknowledge_service_wildcards()

    def _allow_child_executions(self, name: str) -> None:
        """A Distributed Map runs each iteration as a child execution of this state machine: it may start, read and
        stop its own executions. The ARNs are built from the machine's name (its ARN in its own role's policy would be
        a circular dependency)."""
        prefix = f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="RunMapChildExecutions",
                actions=["states:StartExecution"],
                resources=[f"{prefix}:stateMachine:{name}"],
            )
        )
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="FollowMapChildExecutions",
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[f"{prefix}:execution:{name}/*"],
            )
        )
        acknowledge(
            self.state_machine.role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f"{name}/*]",
            "A Distributed Map's child executions get names chosen by Step Functions at run time; the wildcard is "
            "limited to this state machine's own executions.",
        )

    def _acknowledge_service_wildcards(self) -> None:
        acknowledge(
            self.state_machine.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Only the statements CDK adds for execution logging (logs:*LogDelivery, PutResourcePolicy, "
            "DescribeResourcePolicies, DescribeLogGroups) and X-Ray tracing (xray:PutTraceSegments, "
            "PutTelemetryRecords, GetSampling*) use '*': those APIs have no resource-level permissions. The Lambda "
            "invoke is scoped to the workflow function's ARN.",
        )
