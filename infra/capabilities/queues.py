"""Operator queues: where events nothing else could handle wait for a person (the failed upload events, the task
executions that ended unexpectedly). Encrypted, TLS-only, kept 14 days; an alarm fires on the first message."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constants import OPERATOR_QUEUE_RETENTION_DAYS
from infra.nag import acknowledge


def operator_queue(scope: Construct, construct_id: str, *, holds: str) -> sqs.Queue:
    """A queue of ``holds`` (what lands there, for the acknowledgments' reasons) that only an operator reads."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(OPERATOR_QUEUE_RETENTION_DAYS),
    )
    acknowledge(
        queue,
        "AwsSolutions-SQS3",
        f"This queue is itself a dead-letter destination ({holds}); an operator reads it (its alarm fires on the "
        "first message) and nothing consumes it automatically, so it needs no dead-letter queue of its own.",
    )
    acknowledge(
        queue,
        "Serverless-SQSRedrivePolicy",
        f"A redrive policy moves messages a consumer failed on; this queue ({holds}) has no consumer, only an "
        "operator alerted by its alarm.",
    )
    return queue
