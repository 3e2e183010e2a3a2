"""Every handler's edge (chalicelib.telemetry.boundary): the correlation id of its event on the
log lines, the metrics it counted flushed, the run's ids passed on to the runtime, and no tracer
outside Lambda."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from chalicelib.telemetry import logger
from local.stack import ROOT
from mcp_container.execution import ExecuteRequest
from tests.handlers.conftest import Handlers


def test_websocket_handlers_log_under_api_gateways_request_id(h: Handlers) -> None:
    _, key = h.user()
    connection_id = h.connect(key)
    event = {"requestContext": {"routeKey": "$disconnect", "eventType": "DISCONNECT", "connectionId": connection_id,
                                "domainName": "d", "stage": "api", "apiId": "a", "requestId": "disconnect-1"}}
    h.invoke("ws_disconnect", event)
    assert logger.get_correlation_id() == "disconnect-1"


def test_the_sweeper_logs_under_its_event_id_and_flushes_what_it_counted(
    h: Handlers, capsys: pytest.CaptureFixture[str]
) -> None:
    from chalicelib.models import Execution

    h.rewire(pending_deadline_seconds=1)
    _, key = h.user()
    execution_id = h.start(key, h.agent(key))
    h.execution(execution_id).update(actions=[Execution.created_at.set("2026-01-01T00:00:00.000000Z")])
    capsys.readouterr()
    assert h.sweep()["swept"] >= 1
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any("ExecutionsFailed" in line for line in emitted if "_aws" in line)
    assert uuid.UUID(logger.get_correlation_id())  # the scheduled event's id


def test_the_executor_passes_the_runs_trace_and_correlation_ids_to_the_runtime(
    h: Handlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-6745c9ea-1b2c3d4e5f60718293a4b5c6")
    _, key = h.user()
    h.start(key, h.agent(key))
    h.runtime.play({"type": "result", "output": {"answer": "", "sources": []}})
    h.deliver()
    headers = h.runtime.requests[0]["headers"]
    request = ExecuteRequest.parse({"query": "q"}, headers)
    assert request.trace == f"trace=Root=1-6745c9ea-1b2c3d4e5f60718293a4b5c6 correlation={headers['X-Correlation-Id']}"


def test_outside_lambda_no_tracer_is_loaded_and_nothing_warns() -> None:
    probe = (
        "import sys, warnings; warnings.simplefilter('error'); import app; from chalice.test import Client; "
        "assert Client(app.app).http.get('/health').status_code == 200; print('aws_xray_sdk' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False" and "Traceback" not in done.stderr


def test_with_tracing_on_every_kind_of_handler_still_answers(h: Handlers) -> None:
    from tests.infra.conftest import load_event

    h.rewire(tracing=True)
    assert h.api(load_event("rest_get_health.json"))["statusCode"] == 200
    _, key = h.user()
    assert h.send(h.connect(key), {"action": "ping"}) == [{"type": "pong"}]
    assert h.sweep() == {"swept": 0}
