"""Fair share of the run queue (DESIGN §5): one user's backlog never starves another. Each run
message names its user as the fair queue's tenant, and the local poller plays SQS's fairness,
so a quiet user's run waits behind what the runtime already holds, never behind the backlog.
Real gateway, poller and moto server; the runtime's one-at-a-time scheduling with fast runs."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib import capacity
from chalicelib.runs import tenant
from local.stack import Stack
from tests.conftest import Api, create_key, running_stack
from tests.fixtures.scripted import SerialRuntime
from tests.live import WsClient, wait_until
from tests.test_bursts import agent_for

RUN_SECONDS = 1.5
BACKLOG = 40


@pytest.fixture
def fair_stack(aws_endpoint: str) -> Iterator[tuple[Stack, SerialRuntime]]:
    runtime = SerialRuntime(capacity.RUNTIME_QUEUE_SIZE, RUN_SECONDS)
    try:
        with running_stack("fair", aws_url=aws_endpoint, runtime_url=runtime.url) as stack:
            yield stack, runtime
    finally:
        runtime.close()


def test_a_quiet_users_run_waits_behind_the_runtime_queue_never_behind_a_noisy_users_backlog(
    fair_stack: tuple[Stack, SerialRuntime],
) -> None:
    stack, runtime = fair_stack
    _, noisy, noisy_agent = agent_for(stack, max_tokens=16)
    backlog = [noisy.started(noisy_agent) for _ in range(BACKLOG)]
    wait_until(lambda: runtime.full, 60, "the runtime full of the noisy user's runs")
    quiet_key, _, quiet_agent = agent_for(stack, max_tokens=16)
    client = WsClient(stack, quiet_key)
    try:
        asked = time.monotonic()
        client.send({"action": "start_agent", "agent_id": quiet_agent, "input_data": {"query": "q"}})
        started = client.until(lambda f: f.get("type") == "execution_started", 30)[-1]
        client.until(lambda f: f.get("type") == "agent_event" and f.get("event_type") == "token", 60)
        first_token = time.monotonic() - asked
    finally:
        client.close()
    began = runtime.began[started["execution_id"]]
    ahead = sum(1 for e in backlog if asked < runtime.began.get(e, float("inf")) < began)
    # Only what the runtime held when the run was asked for (one generating, the queue
    # waiting) may begin before it: never the backlog behind them.
    held = capacity.RUNTIME_QUEUE_SIZE + 1
    assert ahead <= held, f"{ahead} of the noisy user's runs began first"
    waiting = sum(1 for e in backlog if runtime.began.get(e, float("inf")) > began)
    assert waiting >= BACKLOG // 2, f"only {waiting} of the backlog still waited"
    # (held) run-times, and one more for the platform on a machine shared with other suites.
    assert first_token <= (held + 1) * RUN_SECONDS, f"first token after {first_token:.1f} s"


def test_each_run_message_names_its_user_as_the_tenant(rest_stack: Stack, sqs: Any) -> None:
    user_id = f"tenant {uuid.uuid4().hex[:6]} ü#"  # a user id need not be a valid group id
    api = Api(rest_stack, create_key(rest_stack, user_id))
    agent_id = api.post("/agents", json={"name": "tenant"}).json()["agent_id"]
    execution_id = api.started(agent_id)
    url = sqs.get_queue_url(QueueName=f"dynavera-{rest_stack.stage}-runs")["QueueUrl"]
    seen = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["MessageGroupId"]
    ).get("Messages", []):
        seen += batch
    for message in seen:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    (ours,) = [m for m in seen if json.loads(m["Body"])["execution_id"] == execution_id]
    assert ours["Attributes"]["MessageGroupId"] == tenant(user_id)
    assert re.fullmatch(r"[0-9a-f]{64}", tenant(user_id)) and tenant(user_id) != tenant("other")
