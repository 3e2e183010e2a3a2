"""Settings for the Lambda code, read once from the environment.

Nothing else in chalicelib reads os.environ: table and queue names, the runtime URL and the
WebSocket management endpoint all arrive here. AWS endpoints (LocalStack, the embedded moto
server) are picked up by botocore itself from AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    stage: str
    region: str
    agents_table: str
    executions_table: str
    events_table: str
    connections_table: str
    subscriptions_table: str
    api_keys_table: str
    idempotency_table: str
    runs_queue_name: str
    mcp_agent_url: str
    websocket_endpoint: str | None
    execution_deadline_seconds: int
    runtime_attempts: int
    console_origin: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        stage = env.get("DYNAVERA_STAGE", "dev")

        def name(var: str, suffix: str) -> str:
            return env.get(var, f"dynavera-{stage}-{suffix}")

        return cls(
            stage=stage,
            region=env.get("AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1")),
            agents_table=name("AGENTS_TABLE", "agents"),
            executions_table=name("EXECUTIONS_TABLE", "executions"),
            events_table=name("EVENTS_TABLE", "events"),
            connections_table=name("CONNECTIONS_TABLE", "connections"),
            subscriptions_table=name("SUBSCRIPTIONS_TABLE", "subscriptions"),
            api_keys_table=name("API_KEYS_TABLE", "api-keys"),
            idempotency_table=name("IDEMPOTENCY_TABLE", "idempotency"),
            runs_queue_name=name("RUNS_QUEUE_NAME", "runs"),
            mcp_agent_url=env.get("MCP_AGENT_URL", "http://127.0.0.1:8001").rstrip("/"),
            websocket_endpoint=env.get("WEBSOCKET_ENDPOINT") or None,
            execution_deadline_seconds=int(env.get("EXECUTION_DEADLINE_SECONDS", "900")),
            runtime_attempts=int(env.get("RUNTIME_ATTEMPTS", "3")),
            console_origin=env.get("CONSOLE_ORIGIN", "").rstrip("/") or None,
        )


settings = Settings.from_env()
