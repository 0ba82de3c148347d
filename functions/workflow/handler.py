"""Lambda entry point for the async workflow's steps: the state machine invokes it with {step, state}."""

from __future__ import annotations

from typing import Any

from earshot.jobs.steps import registry
from earshot.observability import logger, metrics
from earshot.runtime import get_runtime
from earshot.workflow import dispatch_step


@logger.inject_lambda_context
@metrics.log_metrics  # BilledMinutes, EngineLatency and ProviderErrors of tasks reach CloudWatch as the sync ones do
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(task_id=(event.get("state") or {}).get("task_id"), step=event.get("step"))
    return dispatch_step(registry(get_runtime()), event)
