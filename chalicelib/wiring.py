"""The one wiring step: settings in, and each module handed just what it needs of them — the
models their tables, the AWS clients their endpoint, the runtime client its URL and secret,
telemetry its tracing switch, the executor its run policy, the WebSocket its endpoint, usage
the stage's per-user limits, documents their bucket and indexing deadline, the state machine the
delivery that announces a run's end."""

from __future__ import annotations

from dataclasses import fields

from chalicelib import (
    aws,
    capacity,
    delivery,
    documents,
    executor,
    models,
    runs,
    runtime_client,
    telemetry,
    usage,
    websocket,
)
from chalicelib.limits import Limits
from chalicelib.settings import ConfigError, Settings, lambda_trace_header


def run_policy(settings: Settings) -> executor.RunPolicy:
    """The platform's run policy with the stage's overrides."""
    overrides = {f.name: getattr(settings, f.name) for f in fields(executor.RunPolicy)}
    return executor.RunPolicy(**{name: value for name, value in overrides.items() if value is not None})


def limits(settings: Settings) -> Limits:
    """The per-user limits with the stage's overrides; a name no limit has fails here, at import."""
    try:
        return Limits().with_overrides(settings.limit_overrides)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def wire(settings: Settings) -> None:
    """Called once per process (app.py at import); the local stack and the tests call it again
    with their own settings."""
    models.bind_tables(settings)
    aws.configure(settings)
    runtime_client.configure(settings.mcp_agent_url, settings.runtime_secret, settings.runtime_secret_arn)
    telemetry.configure(settings.tracing, lambda_trace_header)
    executor.configure(run_policy(settings))
    websocket.configure(settings.websocket_endpoint)
    usage.configure(limits(settings))
    deadline = settings.indexing_deadline_seconds or capacity.INDEXING_DEADLINE_SECONDS
    documents.configure(documents.Storage(settings.documents_bucket, deadline))
    runs.configure(delivery.end_run)
