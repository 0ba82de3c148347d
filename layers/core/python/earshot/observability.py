"""Powertools Logger and Metrics, shared by every function. Keys never reach a log: only key ids."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

SERVICE = "earshot"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Earshot", service=SERVICE)
