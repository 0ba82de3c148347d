"""Alarms on what a user would notice (server errors, failing or throttled functions, failing providers, task
executions that ended without the workflow handling it, upload events nobody processed), sent to an encrypted SNS
topic, and one dashboard of the stage."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from earshot.workflow import FAILED_STATE_ERROR
from infra.capabilities.queues import operator_queue
from infra.constants import (
    ALARM_PERIOD_MIN,
    API_5XX_RATE_THRESHOLD_PCT,
    METRICS_NAMESPACE,
    PROVIDER_ERRORS_METRIC,
    PROVIDER_ERRORS_THRESHOLD,
    SERVICE_NAME,
)
from infra.nag import acknowledge
from infra.naming import pascal_id, resource_name

# The execution statuses Step Functions reports on EventBridge that mean "ended, and not as designed".
UNEXPECTED_EXECUTION_STATUSES = ("TIMED_OUT", "ABORTED")


class Monitoring(Construct):
    """The alarm topic, the alarms (API 5xx rate, errors and throttles per function, provider errors, unexpected task
    execution endings, failed upload events) and the stage's dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        http_api: apigwv2.IHttpApi,
        functions: Mapping[str, lambda_.IFunction],
        state_machine: sfn.IStateMachine,
        failed_upload_events: sqs.IQueue,
        alarm_email: str | None,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self._prefix = resource_name(stage)
        self._period = Duration.minutes(ALARM_PERIOD_MIN)
        self.topic = self._topic(removal_policy)
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self.alarms: list[cloudwatch.Alarm] = [self._api_server_error_rate(http_api)]
        for name, function in functions.items():
            self.alarms.append(self._function_errors(name, function))
            self.alarms.append(self._function_throttles(name, function))
        self.alarms.append(self._provider_errors())
        self.unexpected_executions = self._unexpected_executions_queue(state_machine)
        self.alarms.append(
            self._queue_not_empty(
                self.unexpected_executions,
                "UnexpectedTaskExecutionsAlarm",
                "task-executions-unexpected",
                "A task execution ended without the workflow handling it (timed out, aborted, or failed other than "
                "through refund_and_fail): its task may be unfinished or unrefunded. The events are in the queue.",
            )
        )
        self.alarms.append(
            self._queue_not_empty(
                failed_upload_events,
                "FailedUploadEventsAlarm",
                "upload-events-failed",
                "The ingest function failed an upload's S3 event after Lambda's retries: that upload never started "
                "its task. The events are in the queue; re-invoke ingest with them.",
            )
        )
        action = cw_actions.SnsAction(self.topic)
        for alarm in self.alarms:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
        self.dashboard = self._dashboard(stage, http_api, functions, state_machine, failed_upload_events)

    def _topic(self, removal_policy: RemovalPolicy) -> sns.Topic:
        # CloudWatch can publish to an encrypted topic only with a customer managed key whose policy lets it.
        key = kms.Key(
            self,
            "TopicKey",
            description=f"{self._prefix}: encrypts the alarm topic",
            enable_key_rotation=True,
            removal_policy=removal_policy,
            pending_window=Duration.days(7),
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        return sns.Topic(
            self,
            "Alarms",
            topic_name=f"{self._prefix}-alarms",
            display_name=f"Earshot {self._prefix} alarms",
            master_key=key,
            enforce_ssl=True,
        )

    def _api_server_error_rate(self, http_api: apigwv2.IHttpApi) -> cloudwatch.Alarm:
        rate = cloudwatch.MathExpression(
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={
                "errors": http_api.metric_server_error(period=self._period, statistic="Sum"),
                "requests": http_api.metric_count(period=self._period, statistic="Sum"),
            },
            label="5xx responses (%)",
            period=self._period,
        )
        return rate.create_alarm(
            self,
            "Api5xxRate",
            alarm_name=f"{self._prefix}-api-5xx-rate",
            alarm_description=f"More than {API_5XX_RATE_THRESHOLD_PCT}% of API responses were 5xx",
            threshold=API_5XX_RATE_THRESHOLD_PCT,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _function_errors(self, name: str, function: lambda_.IFunction) -> cloudwatch.Alarm:
        # Handled errors become envelopes; Errors counts crashes, timeouts and out-of-memory kills.
        return function.metric_errors(period=self._period, statistic="Sum").create_alarm(
            self,
            f"{pascal_id(name)}Errors",
            alarm_name=f"{self._prefix}-{name}-errors",
            alarm_description=f"The {name} function crashed, timed out or ran out of memory",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _function_throttles(self, name: str, function: lambda_.IFunction) -> cloudwatch.Alarm:
        return function.metric_throttles(period=self._period, statistic="Sum").create_alarm(
            self,
            f"{pascal_id(name)}Throttles",
            alarm_name=f"{self._prefix}-{name}-throttles",
            alarm_description=f"Invocations of the {name} function were throttled (account concurrency)",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _unexpected_executions_queue(self, state_machine: sfn.IStateMachine) -> sqs.Queue:
        """Every execution that ended other than by design, as its EventBridge status-change event.

        A routine failure (bad audio, no balance) is handled: refund_and_fail refunds it, fails the task and the
        execution ends in the Fail state with the error ``TaskFailed``. ExecutionsFailed counts those too, so it
        cannot tell routine from unexpected; the status-change event can (its ``error``): a timeout, an abort, or a
        failure with any other error (refund_and_fail itself failed) lands in this queue.
        """
        queue = operator_queue(
            self, "UnexpectedTaskExecutions", holds="EventBridge events of task executions that ended unexpectedly"
        )
        rule = events.Rule(
            self,
            "UnexpectedTaskExecutionsRule",
            description="Task executions that timed out, were aborted, or failed without refund_and_fail handling it",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail=unexpected_execution_pattern(state_machine.state_machine_arn),
            ),
        )
        rule.add_target(targets.SqsQueue(queue))
        acknowledge(
            rule,
            "Serverless-EventBusDLQ",
            "The rule's one target is itself an operator queue of unexpected endings; EventBridge retries delivery to "
            "it for 24 hours, and a second queue for the first one's undelivered events would only move the question.",
        )
        return queue

    def _queue_not_empty(self, queue: sqs.IQueue, construct_id: str, name: str, description: str) -> cloudwatch.Alarm:
        # Stays in alarm until an operator has dealt with every message (and deleted it).
        return queue.metric_approximate_number_of_messages_visible(
            period=self._period, statistic="Maximum"
        ).create_alarm(
            self,
            construct_id,
            alarm_name=f"{self._prefix}-{name}",
            alarm_description=description,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _dashboard(
        self,
        stage: str,
        http_api: apigwv2.IHttpApi,
        functions: Mapping[str, lambda_.IFunction],
        state_machine: sfn.IStateMachine,
        failed_upload_events: sqs.IQueue,
    ) -> cloudwatch.Dashboard:
        """One page per stage: the API, every function, the task workflow, the operator queues, the alarms."""
        period = Duration.minutes(1)
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{self._prefix}-overview")
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title=f"Earshot {stage}: alarms", alarms=self.alarms, width=24, height=4)
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[
                    http_api.metric_count(period=period, statistic="Sum", label="requests"),
                    http_api.metric_client_error(period=period, statistic="Sum", label="4xx"),
                    http_api.metric_server_error(period=period, statistic="Sum", label="5xx"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="API latency (ms)",
                left=[
                    http_api.metric_latency(period=period, statistic="p50", label="p50"),
                    http_api.metric_latency(period=period, statistic="p99", label="p99"),
                    http_api.metric_integration_latency(period=period, statistic="p99", label="integration p99"),
                ],
                width=12,
            ),
        )
        names = sorted(functions)
        per_function: tuple[tuple[str, str, Callable[[lambda_.IFunction], Callable[..., cloudwatch.Metric]]], ...] = (
            ("Invocations", "Sum", lambda f: f.metric_invocations),
            ("Errors", "Sum", lambda f: f.metric_errors),
            ("Throttles", "Sum", lambda f: f.metric_throttles),
            ("Duration p99 (ms)", "p99", lambda f: f.metric_duration),
        )
        dashboard.add_widgets(
            *(
                cloudwatch.GraphWidget(
                    title=f"Functions: {title}",
                    left=[metric(functions[name])(period=period, statistic=statistic, label=name) for name in names],
                    width=6,
                )
                for title, statistic, metric in per_function
            )
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Concurrent executions",
                left=[
                    functions[name].metric("ConcurrentExecutions", period=period, statistic="Maximum", label=name)
                    for name in names
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Task executions",
                left=[
                    state_machine.metric_started(period=period, statistic="Sum", label="started"),
                    state_machine.metric_succeeded(period=period, statistic="Sum", label="succeeded"),
                    state_machine.metric_failed(period=period, statistic="Sum", label="failed (incl. refunded)"),
                    state_machine.metric_timed_out(period=period, statistic="Sum", label="timed out"),
                ],
                right=[state_machine.metric_time(period=period, statistic="p90", label="p90 time (ms)")],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Operator queues (should be empty)",
                left=[
                    failed_upload_events.metric_approximate_number_of_messages_visible(
                        period=period, statistic="Maximum", label="failed upload events"
                    ),
                    self.unexpected_executions.metric_approximate_number_of_messages_visible(
                        period=period, statistic="Maximum", label="unexpected task executions"
                    ),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Provider errors",
                left=[self._provider_errors_metric(period)],
                width=12,
            ),
        )
        return dashboard

    @staticmethod
    def _provider_errors_metric(period: Duration) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=PROVIDER_ERRORS_METRIC,
            dimensions_map={"service": SERVICE_NAME},  # Powertools Metrics adds the service dimension
            period=period,
            statistic="Sum",
        )

    def _provider_errors(self) -> cloudwatch.Alarm:
        return self._provider_errors_metric(self._period).create_alarm(
            self,
            "ProviderErrors",
            alarm_name=f"{self._prefix}-provider-errors",
            alarm_description=f"{PROVIDER_ERRORS_THRESHOLD}+ upstream provider errors in {ALARM_PERIOD_MIN} min",
            threshold=PROVIDER_ERRORS_THRESHOLD,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )


def unexpected_execution_pattern(state_machine_arn: str) -> dict[str, object]:
    """The ``detail`` of an EventBridge pattern matching this state machine's executions that ended unexpectedly:
    timed out, aborted, or failed with an error other than the workflow's own ``TaskFailed``."""
    return {
        "stateMachineArn": [state_machine_arn],
        "$or": [
            {"status": list(UNEXPECTED_EXECUTION_STATUSES)},
            {"status": ["FAILED"], "error": [{"anything-but": [FAILED_STATE_ERROR]}]},
        ],
    }
