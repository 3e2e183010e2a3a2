"""The numbers of chalicelib/capacity.py are the ones every part uses: the event source, the
runs queue, the stages, the runtime's wait queue and the settings' deadlines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chalice.app import SQSEventConfig

from chalicelib import capacity
from chalicelib.executor import retry_delay
from chalicelib.settings import Settings
from chalicelib.wiring import run_policy
from local.endpoint import load_template
from mcp_container.config import Settings as RuntimeSettings

ROOT = Path(__file__).resolve().parent.parent


def test_the_executor_event_source_is_capped_at_the_executor_concurrency() -> None:
    import app as app_module

    (source,) = [s for s in app_module.app.event_sources if isinstance(s, SQSEventConfig)]
    assert (source.batch_size, source.maximum_concurrency) == (1, capacity.EXECUTOR_CONCURRENCY)
    assert capacity.EXECUTOR_CONCURRENCY >= 2  # AWS's minimum for maximum_concurrency


def test_a_burst_at_the_cap_fits_in_one_runtime_task() -> None:
    assert 1 + capacity.RUNTIME_QUEUE_SIZE >= capacity.EXECUTOR_CONCURRENCY
    assert RuntimeSettings.from_env({}).queue_size == capacity.RUNTIME_QUEUE_SIZE
    task = load_template(ROOT / "infra" / "runtime.yaml")["Resources"]["RuntimeTaskDefinition"]["Properties"]
    (container,) = task["ContainerDefinitions"]
    deployed = [e["Value"] for e in container.get("Environment", []) if e["Name"] == "DYNAVERA_QUEUE_SIZE"]
    assert deployed == [str(capacity.RUNTIME_QUEUE_SIZE)], "the runtime stack sets the queue size it is sized for"


def test_the_runs_queue_follows_the_executor_timeout_and_receive_limit() -> None:
    template = load_template()
    queue = template["Resources"]["RunsQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == capacity.MAX_RECEIVES >= 5
    visibility = template["Parameters"]["RunsVisibilityTimeoutSeconds"]["Default"]
    assert visibility == capacity.RUNS_VISIBILITY_TIMEOUT_SECONDS >= 6 * capacity.EXECUTOR_TIMEOUT_SECONDS


def test_every_stage_gives_the_executor_the_timeout_the_deadlines_are_derived_from() -> None:
    stages = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]
    for stage in stages.values():
        assert stage["lambda_functions"]["run_executions"]["lambda_timeout"] == capacity.EXECUTOR_TIMEOUT_SECONDS


def test_deadlines_and_retries_default_to_what_capacity_derives() -> None:
    settings = run_policy(Settings.from_env({}))
    assert settings.execution_deadline_seconds == capacity.RUNNING_DEADLINE_SECONDS > capacity.EXECUTOR_TIMEOUT_SECONDS
    assert settings.pending_deadline_seconds == capacity.PENDING_DEADLINE_SECONDS
    # The executor gives up on a busy runtime itself, before the queue dead-letters the message.
    assert settings.run_attempts == capacity.RUN_ATTEMPTS < capacity.MAX_RECEIVES


@pytest.mark.parametrize("receives", range(1, 12))
def test_retry_delays_double_with_jitter_up_to_the_cap(receives: int) -> None:
    base = min(capacity.RETRY_CAP_SECONDS, 2 * 2 ** (receives - 1))
    delays = {retry_delay(receives, 2) for _ in range(50)}
    assert all(base <= d <= base + base // 2 for d in delays)
    assert max(delays) <= 1.5 * capacity.RETRY_CAP_SECONDS
