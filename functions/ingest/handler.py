"""Lambda entry point for S3 ObjectCreated events on the inbox: uploads that asked to be processed."""

from __future__ import annotations

from typing import Any

from earshot.jobs.ingest import ingest_object
from earshot.observability import logger, metrics
from earshot.runtime import get_runtime
from earshot.services.uploads import s3_event_records


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    runtime = get_runtime()
    started = []
    for bucket, key, version in s3_event_records(event):
        task = ingest_object(runtime, bucket=bucket, key=key, version=version)
        if task is not None:
            started.append(task.id)
    return {"tasks": started}
