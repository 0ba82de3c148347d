"""The S3 bucket for audio blobs and results, and the bucket that receives its server access logs."""

from __future__ import annotations

import math

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from earshot.blob_layout import INBOX_PREFIX, INFERENCE_PREFIX, TASKS_PREFIX, UPLOADS_PREFIX
from earshot.ports import TASK_TTL_SEC
from infra.constants import (
    ABORT_INCOMPLETE_MULTIPART_DAYS,
    AUDIO_PREFIXES,
    DELETED_AUDIO_EXPIRY_DAYS,
)
from infra.nag import acknowledge

DAY_SEC = 24 * 3600
# A task's blobs (its stored input, a large result) are read for as long as the task is: it expires after
# TASK_TTL_SEC, and lifecycle rules count whole days (rounded to the next midnight UTC), so one day more.
TASK_BLOB_EXPIRY_DAYS = math.ceil(TASK_TTL_SEC / DAY_SEC) + 1


class Storage(Construct):
    """Private, TLS-only, S3-encrypted, owner-enforced, versioned buckets. Uploads under ``inbox/`` and their records
    under ``uploads/`` expire after a day or so; task blobs under ``tasks/`` when their task does.

    Versioning matters beyond safety: the ingest function names a task after the uploaded object's bucket, key and
    version, so re-uploading to the same key starts a new task while a duplicated event starts none.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: RemovalPolicy,
        auto_delete_objects: bool,
        inbox_expiry_days: int,
        noncurrent_version_expiry_days: int,
        access_log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self._removal_policy = removal_policy
        self._auto_delete_objects = auto_delete_objects
        self.access_logs = self._access_log_bucket(access_log_retention_days)
        self.bucket = self._blob_bucket(inbox_expiry_days, noncurrent_version_expiry_days)

    def _access_log_bucket(self, retention_days: int) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            encryption=s3.BucketEncryption.S3_MANAGED,  # S3 log delivery cannot write to SSE-KMS buckets
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(retention_days),
                    abort_incomplete_multipart_upload_after=Duration.days(ABORT_INCOMPLETE_MULTIPART_DAYS),
                )
            ],
            removal_policy=self._removal_policy,
            auto_delete_objects=self._auto_delete_objects,
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "This bucket is the access-log destination; logging its own access would log the logging.",
        )
        return bucket

    def _blob_bucket(self, inbox_expiry_days: int, noncurrent_version_expiry_days: int) -> s3.Bucket:
        return s3.Bucket(
            self,
            "Blobs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="blobs/",
            lifecycle_rules=[
                # Uploads are the input of one request or task; keeping them longer only costs money.
                s3.LifecycleRule(
                    id="expire-inbox-uploads",
                    prefix=INBOX_PREFIX,
                    expiration=Duration.days(inbox_expiry_days),
                ),
                # An upload's record says who owns the file; once the file is gone its file_id is useless. A day
                # more than the file, as the record is written just before the upload, perhaps the day before.
                s3.LifecycleRule(
                    id="expire-upload-records",
                    prefix=UPLOADS_PREFIX,
                    expiration=Duration.days(inbox_expiry_days + 1),
                ),
                # Inputs stored for a task and results too large for its record: nobody can read them once the task
                # has expired (DELETE /v1/tasks/{id} removes them sooner).
                s3.LifecycleRule(
                    id="expire-task-blobs",
                    prefix=TASKS_PREFIX,
                    expiration=Duration.days(TASK_BLOB_EXPIRY_DAYS),
                ),
                # An engine call's audio lives only for the call (and is deleted after it); this catches a call that
                # died before it could clean up.
                s3.LifecycleRule(
                    id="expire-inference-audio",
                    prefix=INFERENCE_PREFIX,
                    expiration=Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="abort-incomplete-multipart-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(ABORT_INCOMPLETE_MULTIPART_DAYS),
                ),
                # Deleted audio must really go: a delete (DELETE /v1/tasks/{id}, an input removed after its task)
                # leaves a noncurrent version behind, which S3 removes a day later (its shortest). Where rules
                # overlap, S3 honours the shorter expiration, so these win over the stage's general rule below.
                *(
                    s3.LifecycleRule(
                        id=f"expire-deleted-audio-{prefix.rstrip('/')}",
                        prefix=prefix,
                        noncurrent_version_expiration=Duration.days(DELETED_AUDIO_EXPIRY_DAYS),
                    )
                    for prefix in AUDIO_PREFIXES
                ),
                # Versioning is a safety net against overwrites, not an archive.
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(noncurrent_version_expiry_days),
                    expired_object_delete_marker=True,
                ),
            ],
            removal_policy=self._removal_policy,
            auto_delete_objects=self._auto_delete_objects,
        )
