"""The S3 bucket for audio blobs and results, and the bucket that receives its server access logs."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.constants import ABORT_INCOMPLETE_MULTIPART_DAYS, INBOX_PREFIX
from infra.nag import acknowledge


class Storage(Construct):
    """Private, TLS-only, S3-encrypted, owner-enforced buckets; uploads under ``inbox/`` expire."""

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
                s3.LifecycleRule(
                    id="abort-incomplete-multipart-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(ABORT_INCOMPLETE_MULTIPART_DAYS),
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
