"""Lambda entry point for the scheduled sweeper: holds and tasks that a crash or a timeout left behind."""

from __future__ import annotations

from typing import Any

from earshot.observability import logger, metrics
from earshot.runtime import get_runtime
from earshot.services.recovery import sweep


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    recovered = sweep(get_runtime())
    return {
        "refunded": len(recovered.refunded),
        "captured": len(recovered.captured),
        "failed_tasks": len(recovered.failed_tasks),
    }
