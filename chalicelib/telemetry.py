"""Logging and metrics for every handler: one Powertools Logger (JSON lines) and one Metrics (EMF)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="dynavera")
metrics = Metrics(namespace="Dynavera", service="dynavera")


def count(name: str, value: int = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def flush() -> None:
    """Publish what this invocation counted. Chalice's one-argument handlers cannot take
    Powertools' log_metrics decorator, and an empty flush would only log a warning."""
    if metrics.metric_set:
        metrics.flush_metrics()
