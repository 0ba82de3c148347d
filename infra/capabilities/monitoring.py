"""Alarms on what a user would notice (server errors, failing or throttled functions, failing providers, tasks
that ran out of time), sent to an encrypted SNS topic."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.constants import (
    ALARM_PERIOD_MIN,
    API_5XX_RATE_THRESHOLD_PCT,
    METRICS_NAMESPACE,
    PROVIDER_ERRORS_METRIC,
    PROVIDER_ERRORS_THRESHOLD,
    SERVICE_NAME,
)
from infra.naming import pascal_id, resource_name


class Monitoring(Construct):
    """The alarm topic and the alarms: API 5xx rate, errors and throttles per function, provider errors, timed-out
    task executions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        http_api: apigwv2.IHttpApi,
        functions: Mapping[str, lambda_.IFunction],
        state_machine: sfn.IStateMachine,
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
        self.alarms.append(self._task_executions_timed_out(state_machine))
        action = cw_actions.SnsAction(self.topic)
        for alarm in self.alarms:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)

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

    def _task_executions_timed_out(self, state_machine: sfn.IStateMachine) -> cloudwatch.Alarm:
        # A failed execution is routine (bad audio, no balance: refunded and reported on the task). One that timed
        # out never reached refund_and_fail: its task is left unfinished and its debit unrefunded.
        return state_machine.metric_timed_out(period=self._period, statistic="Sum").create_alarm(
            self,
            "TaskExecutionsTimedOut",
            alarm_name=f"{self._prefix}-task-executions-timed-out",
            alarm_description="A task execution timed out without refund_and_fail: its task needs an operator",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _provider_errors(self) -> cloudwatch.Alarm:
        metric = cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=PROVIDER_ERRORS_METRIC,
            dimensions_map={"service": SERVICE_NAME},  # Powertools Metrics adds the service dimension
            period=self._period,
            statistic="Sum",
        )
        return metric.create_alarm(
            self,
            "ProviderErrors",
            alarm_name=f"{self._prefix}-provider-errors",
            alarm_description=f"{PROVIDER_ERRORS_THRESHOLD}+ upstream provider errors in {ALARM_PERIOD_MIN} min",
            threshold=PROVIDER_ERRORS_THRESHOLD,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
