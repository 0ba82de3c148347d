"""Crash recovery in the cloud: a schedule runs the sweeper, which releases what a timeout or a crash left held.

A charge is a hold until its work is delivered; a Lambda killed at its timeout (or out of memory) leaves its
hold open and may leave a task unfinished. Every ``SWEEPER_RATE_MINUTES`` the sweeper function
(``earshot.services.recovery.sweep``) refunds holds older than any function can run and fails tasks older than
their workflow's time limit.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.nag import acknowledge


class HoldSweeper(Construct):
    """An EventBridge schedule that invokes ``sweeper`` every ``rate_minutes``."""

    def __init__(self, scope: Construct, construct_id: str, *, sweeper: lambda_.IFunction, rate_minutes: int) -> None:
        super().__init__(scope, construct_id)
        self.rule = events.Rule(
            self,
            "Schedule",
            description="Release held charges and end tasks whose work can no longer be delivered",
            schedule=events.Schedule.rate(Duration.minutes(rate_minutes)),
            # A missed run is harmless: the next one sweeps the same holds.
            targets=[targets.LambdaFunction(sweeper, retry_attempts=2, max_event_age=Duration.minutes(rate_minutes))],
        )
        acknowledge(
            self.rule,
            "Serverless-EventBusDLQ",
            "A scheduled sweep that is not delivered loses nothing: the next one, minutes later, sweeps the same holds "
            "and tasks. A dead-letter queue would hold only empty schedule events.",
        )
