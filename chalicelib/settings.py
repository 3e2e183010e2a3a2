"""Settings for the Lambda code: built once from the environment, then handed to the modules that
need them by one wiring step, `chalicelib.wiring.wire(settings)`, which app.py calls (and the
local stack, the bench, a test). A leaf: it imports nothing of Dynavera's.

Nothing else in chalicelib reads os.environ: table and queue names, the AWS endpoint, the
runtime URL, the WebSocket management endpoint and the invocation's trace header come from here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class ConfigError(ValueError):
    """A setting in the environment cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    stage: str
    region: str
    # None in AWS: botocore's own endpoints and the function's role. Locally the moto server or
    # LocalStack, and the credentials it takes (any, by default "test").
    aws_endpoint_url: str | None
    local_credentials: tuple[str, str] | None
    agents_table: str
    executions_table: str
    events_table: str
    connections_table: str
    subscriptions_table: str
    api_keys_table: str
    idempotency_table: str
    usage_table: str
    collections_table: str
    documents_table: str
    # The exact name, never derived here: it carries the account id (contract.documents_bucket),
    # which a Lambda does not know; the deploy passes the data stack's output, the local stack
    # its endpoint's. None where nothing uses documents (a CLI key command).
    documents_bucket: str | None
    runs_queue_name: str
    ingest_queue_name: str
    mcp_agent_url: str
    runtime_secret: str
    # In AWS the secret's ARN, not the secret: the executor reads it from Secrets Manager.
    runtime_secret_arn: str | None
    websocket_endpoint: str | None
    # Overrides of the run policy (chalicelib.capacity's numbers when None), for tests and stages.
    execution_deadline_seconds: int | None
    pending_deadline_seconds: int | None
    run_attempts: int | None
    retry_base_seconds: int | None
    # How long a document may sit queued, extracting or embedding without progress before the
    # sweeper fails it (chalicelib.capacity's when None).
    indexing_deadline_seconds: int | None
    # X-Ray through Powertools' Tracer: on only inside Lambda with tracing active.
    tracing: bool
    console_origin: str | None
    # DYNAVERA_LIMIT_<NAME> overrides of the per-user limits (chalicelib.limits), by name.
    limit_overrides: Mapping[str, int]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        stage = env.get("DYNAVERA_STAGE", "dev")
        endpoint_url = env.get("AWS_ENDPOINT_URL") or None

        def name(var: str, suffix: str) -> str:
            return env.get(var) or f"dynavera-{stage}-{suffix}"

        return cls(
            stage=stage,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            aws_endpoint_url=endpoint_url,
            local_credentials=_local_credentials(env) if endpoint_url else None,
            agents_table=name("AGENTS_TABLE", "agents"),
            executions_table=name("EXECUTIONS_TABLE", "executions"),
            events_table=name("EVENTS_TABLE", "events"),
            connections_table=name("CONNECTIONS_TABLE", "connections"),
            subscriptions_table=name("SUBSCRIPTIONS_TABLE", "subscriptions"),
            api_keys_table=name("API_KEYS_TABLE", "api-keys"),
            idempotency_table=name("IDEMPOTENCY_TABLE", "idempotency"),
            usage_table=name("USAGE_TABLE", "usage"),
            collections_table=name("COLLECTIONS_TABLE", "collections"),
            documents_table=name("DOCUMENTS_TABLE", "documents"),
            documents_bucket=env.get("DOCUMENTS_BUCKET") or None,
            runs_queue_name=name("RUNS_QUEUE_NAME", "runs"),
            ingest_queue_name=name("INGEST_QUEUE_NAME", "ingest"),
            mcp_agent_url=(env.get("MCP_AGENT_URL") or "http://127.0.0.1:8001").rstrip("/"),
            runtime_secret=env.get("DYNAVERA_RUNTIME_SECRET", ""),
            runtime_secret_arn=env.get("DYNAVERA_RUNTIME_SECRET_ARN") or None,
            websocket_endpoint=env.get("WEBSOCKET_ENDPOINT") or None,
            execution_deadline_seconds=_positive(env, "EXECUTION_DEADLINE_SECONDS"),
            pending_deadline_seconds=_positive(env, "PENDING_DEADLINE_SECONDS"),
            run_attempts=_positive(env, "RUN_ATTEMPTS"),
            retry_base_seconds=_positive(env, "RETRY_BASE_SECONDS"),
            indexing_deadline_seconds=_positive(env, "INDEXING_DEADLINE_SECONDS"),
            tracing=bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))
            and env.get("POWERTOOLS_TRACE_DISABLED", "false").lower() not in ("1", "true"),
            console_origin=env.get("CONSOLE_ORIGIN", "").rstrip("/") or None,
            limit_overrides=_limit_overrides(env),
        )


def _local_credentials(env: Mapping[str, str]) -> tuple[str, str]:
    # A local endpoint takes any credentials; in AWS the function's role signs every call.
    return env.get("AWS_ACCESS_KEY_ID") or "test", env.get("AWS_SECRET_ACCESS_KEY") or "test"


def _limit_overrides(env: Mapping[str, str]) -> dict[str, int]:
    """The per-user limits a stage sets, `DYNAVERA_LIMIT_<NAME>`, by name; the wiring step
    lays them over chalicelib.limits' defaults and refuses a name it does not know."""
    prefix = "DYNAVERA_LIMIT_"
    overrides = {var.removeprefix(prefix).lower(): _positive(env, var) for var in env if var.startswith(prefix)}
    return {name: value for name, value in overrides.items() if value is not None}


def _positive(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


def lambda_trace_header() -> str | None:
    """This invocation's X-Ray trace header: Lambda sets the variable anew for each invocation,
    so it is read when asked, never kept."""
    return os.environ.get("_X_AMZN_TRACE_ID")
