"""``Earshot-<stage>``: the whole deployment of one stage. It only composes the capability constructs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from constructs import Construct

from earshot import routes
from infra.capabilities.api import Api
from infra.capabilities.data import Data
from infra.capabilities.functions import Functions
from infra.capabilities.ingest import UploadIngest
from infra.capabilities.layers import Layers
from infra.capabilities.monitoring import Monitoring
from infra.capabilities.recovery import HoldSweeper
from infra.capabilities.storage import Storage
from infra.capabilities.workflow import TaskWorkflow
from infra.config import StageConfig
from infra.constants import FUNCTIONS_DIR, INFERENCE_FUNCTION, SERVICE_NAME, SWEEPER_RATE_MINUTES


class EarshotStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        core_layer_dir: Path,
        audio_layer_dir: Path,
        ffprobe_layer_dir: Path,
        functions_dir: Path = FUNCTIONS_DIR,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"Earshot audio API, stage {config.stage}",
            termination_protection=config.termination_protection,
            **kwargs,
        )
        Tags.of(self).add("project", SERVICE_NAME)
        Tags.of(self).add("stage", config.stage)

        data = Data(
            self,
            "Data",
            removal_policy=config.removal_policy,
            point_in_time_recovery=config.point_in_time_recovery,
            deletion_protection=config.deletion_protection,
        )
        storage = Storage(
            self,
            "Storage",
            removal_policy=config.removal_policy,
            auto_delete_objects=config.auto_delete_objects,
            inbox_expiry_days=config.inbox_expiry_days,
            noncurrent_version_expiry_days=config.noncurrent_version_expiry_days,
            access_log_retention_days=config.access_log_retention_days,
        )
        layers = Layers(
            self,
            "Layers",
            core_asset_dir=core_layer_dir,
            audio_asset_dir=audio_layer_dir,
            ffprobe_asset_dir=ffprobe_layer_dir,
        )
        functions = Functions(
            self,
            "Functions",
            names=[*routes.functions(), INFERENCE_FUNCTION],
            config=config,
            layers=layers,
            tables=data.tables,
            table_specs=data.specs,
            bucket=storage.bucket,
            catalog_path=config.catalog_path,
            functions_dir=functions_dir,
        )
        tasks = TaskWorkflow(
            self,
            "Tasks",
            stage=config.stage,
            functions=functions.by_name,
            log_retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        functions.allow_starting_tasks(tasks.state_machine)
        ingest = UploadIngest(self, "UploadIngest", bucket=storage.bucket, ingest=functions.ingest)
        HoldSweeper(self, "HoldSweeper", sweeper=functions.sweeper, rate_minutes=SWEEPER_RATE_MINUTES)
        api = Api(
            self,
            "Api",
            stage=config.stage,
            routes=routes.ROUTES,
            functions=functions.by_name,
            authorizer_function=functions.authorizer,
            throttle_rate_limit=config.throttle_rate_limit,
            throttle_burst_limit=config.throttle_burst_limit,
            log_retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        Monitoring(
            self,
            "Monitoring",
            stage=config.stage,
            http_api=api.http_api,
            functions=functions.by_name,
            state_machine=tasks.state_machine,
            failed_upload_events=ingest.failed_events,
            alarm_email=config.alarm_email,
            removal_policy=config.removal_policy,
        )

        CfnOutput(self, "ApiUrl", value=api.url, description="Base URL of the API (append /v1/...)")
        CfnOutput(self, "BucketName", value=storage.bucket.bucket_name, description="Audio blobs and results")
        CfnOutput(
            self,
            "TaskStateMachineArn",
            value=tasks.state_machine.state_machine_arn,
            description="The async task workflow (one execution per task, named after the task id)",
        )
