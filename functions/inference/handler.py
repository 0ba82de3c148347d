"""Lambda entry point for the `inference` function (a container image: functions/inference/Dockerfile).

It holds the embedded engines and their models; API functions invoke it with one engine call, the state machine
with the engine steps of a task (earshot.inference).
"""

from __future__ import annotations

from typing import Any

from earshot.inference import handle_inference
from earshot.observability import logger, metrics
from earshot.runtime import get_runtime


@logger.inject_lambda_context
@metrics.log_metrics  # a task's BilledMinutes and EngineLatency are recorded by the engine steps that run here
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(task_id=(event.get("state") or {}).get("task_id"), step=event.get("step"))
    return handle_inference(get_runtime(), event)
