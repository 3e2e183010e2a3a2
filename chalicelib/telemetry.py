"""Logging, metrics and tracing for every handler: one Powertools Logger (JSON lines), one
Metrics (EMF), and Powertools' Tracer when X-Ray is on; `boundary` is the edge of every handler."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from chalice.app import Request

import contract

logger = Logger(service="dynavera")
metrics = Metrics(namespace="Dynavera", service="dynavera")

# The id that follows one invocation through the logs: API Gateway's request id (REST and
# WebSocket), the SQS message id, or the scheduled event's id.
CORRELATION_ID_PATH = "requestContext.requestId || Records[0].messageId || id"


# Handed over by the wiring step: whether X-Ray is on, and where this invocation's trace header is read.
_tracing = False
_trace_header: Callable[[], str | None] | None = None


def configure(tracing: bool, trace_header: Callable[[], str | None]) -> None:
    global _tracing, _trace_header
    _tracing, _trace_header = tracing, trace_header


def start_thread(target: Callable[..., None], *args: Any) -> threading.Thread:
    """A daemon thread that logs under its starter's keys (the run's execution_id): the
    logger keeps them in a context variable, which a new thread would otherwise start without."""
    thread = threading.Thread(target=contextvars.copy_context().run, args=(target, *args), daemon=True)
    thread.start()
    return thread


def count(name: str, value: int = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def flush() -> None:
    """Publish what this invocation counted; an empty flush would only log a warning."""
    if metrics.metric_set:
        metrics.flush_metrics()


@cache
def _tracer() -> Any:
    # Imported only where X-Ray is on: the X-Ray SDK would double `import app`.
    from aws_lambda_powertools import Tracer

    return Tracer(service="dynavera")


def boundary(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Chalice middleware for every handler (REST, WebSocket, SQS, schedule): the invocation's
    context and correlation id on every log line, a trace segment when tracing, metrics flushed."""
    if isinstance(event, Request):
        raw, context = event.to_original_event(), event.lambda_context
    else:
        raw, context = event.to_dict(), event.context

    def handler(_: Any, __: Any) -> Any:
        return get_response(event)

    if _tracing:
        handler = _tracer().capture_lambda_handler(handler)
    handler = logger.inject_lambda_context(handler, correlation_id_path=CORRELATION_ID_PATH, clear_state=True)
    try:
        return handler(raw, context)
    finally:
        flush()


def trace_headers() -> dict[str, str]:
    """What the runtime needs to write this run's ids on its own log lines."""
    headers = {}
    correlation_id = logger.get_correlation_id()
    if correlation_id:
        headers[contract.CORRELATION_HEADER] = str(correlation_id)
    trace = _trace_header() if _trace_header else None
    if trace:
        headers[contract.TRACE_HEADER] = trace
    return headers
