"""Lambda entry point for the `uploads` function (routes: see earshot.routes)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from earshot.http.app import build_resolver
from earshot.observability import logger, metrics

app = build_resolver("uploads")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
