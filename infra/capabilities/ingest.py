"""Uploads that start processing by themselves: S3 ObjectCreated under ``inbox/`` invokes the ingest function.

``POST /v1/uploads`` signs a form that puts the audio under ``inbox/<account>/<file_id>/``; once S3 has stored it,
the bucket notifies the ingest function (asynchronously, retried by Lambda), which reads the upload record and, if
it asked for processing, submits the task under an id derived from bucket, key and version (the bucket is
versioned), so a duplicated event starts nothing twice.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from constructs import Construct, IConstruct

from earshot.blob_layout import INBOX_PREFIX
from infra.capabilities.queues import operator_queue
from infra.constants import INGEST_ASYNC_RETRIES, INGEST_MAX_EVENT_AGE_SEC
from infra.nag import acknowledge

# CDK's singleton Lambda that writes a bucket's notification configuration (Custom::S3BucketNotifications).
_NOTIFICATIONS_HANDLER_PREFIX = "BucketNotificationsHandler"


class UploadIngest(Construct):
    """The bucket's ObjectCreated notification for ``inbox/`` keys, delivered to the ingest function, and the queue
    that keeps the events ingest could not handle (``failed_events``: alarmed on, for an operator to re-drive)."""

    def __init__(self, scope: Construct, construct_id: str, *, bucket: s3.Bucket, ingest: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        # Lambda retries an asynchronous event twice, then drops it: the upload would never be processed. The
        # on-failure destination keeps the event (with the error) instead; re-invoking ingest with it is safe, as the
        # task id is derived from the object.
        self.failed_events = operator_queue(
            self, "FailedEvents", holds="the ingest function's S3 events that failed after Lambda's retries"
        )
        ingest.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.failed_events),
            retry_attempts=INGEST_ASYNC_RETRIES,
            max_event_age=Duration.seconds(INGEST_MAX_EVENT_AGE_SEC),
        )
        # Uploads are presigned POSTs (ObjectCreated:Post); any other way an object lands under inbox/ counts too.
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(ingest),
            s3.NotificationKeyFilter(prefix=INBOX_PREFIX),
        )
        self._acknowledge_notifications_handler()

    def _acknowledge_notifications_handler(self) -> None:
        handler_role = _notifications_handler(Stack.of(self)).node.find_child("Role")
        acknowledge(
            handler_role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's BucketNotificationsHandler (the custom resource that writes the bucket's notification "
            "configuration at deploy time) attaches the basic-execution managed policy; it only lets it write logs. "
            "Its own s3:PutBucketNotification grant is scoped to the blob bucket.",
        )


def _notifications_handler(stack: Stack) -> IConstruct:
    handlers = [child for child in stack.node.children if child.node.id.startswith(_NOTIFICATIONS_HANDLER_PREFIX)]
    if len(handlers) != 1:
        raise LookupError(f"expected CDK's one {_NOTIFICATIONS_HANDLER_PREFIX} in the stack, found {len(handlers)}")
    return handlers[0]
