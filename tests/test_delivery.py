"""Runs under load (DESIGN §4, §5): every subscription receives its range of events exactly once
and in order, whatever the timing and however many runs and sockets; the real gateway, poller,
moto server and runtime."""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bench.taps import Tap
from local.stack import Stack
from tests.conftest import Api, create_key, running_stack
from tests.live import TERMINAL_FRAMES, WsClient, seq_frames


def rest_history(api: Api, execution_id: str) -> list[dict[str, Any]]:
    return api.get(f"/executions/{execution_id}/events", params={"limit": 1000}).json()["events"]


def assert_exactly_the_range(frames: list[dict[str, Any]], events: list[dict[str, Any]], after: int = 0) -> None:
    """The frames a subscription received are its run's history after `after`: each seq once, in
    order, with the same content, and the terminal frame last."""
    wanted = [e for e in events if e["seq"] > after]
    assert [f["seq"] for f in frames] == [e["seq"] for e in wanted]
    for frame, event in zip(frames, wanted, strict=True):
        if frame["type"] == "agent_event":
            assert (frame["event_type"], frame["content"], frame["timestamp"]) == (
                event["event_type"], event["content"], event["timestamp"]
            )
        else:
            assert frame["type"] == TERMINAL_FRAMES[event["event_type"]]
    assert events[-1]["event_type"] in TERMINAL_FRAMES


def new_user(stack: Stack, max_tokens: int) -> tuple[str, Api, str]:
    key = create_key(stack, f"load-{uuid.uuid4().hex[:6]}")
    api = Api(stack, key)
    # No collection: what is tested is each stream's exactness, not retrieval (test_live_runs cites).
    config = {"collection": None, "temperature": 0, "max_tokens": max_tokens}
    agent = api.post("/agents", json={"name": "load", "config": config})
    assert agent.status_code == 201, agent.text
    return key, api, agent.json()["agent_id"]


def follow(stack: Stack, key: str, execution_id: str, after: int) -> list[dict[str, Any]]:
    client = WsClient(stack, key)
    try:
        client.send({"action": "subscribe", "execution_id": execution_id, "after": after})
        return seq_frames(client.until_terminal(execution_id, timeout=180), execution_id)
    finally:
        client.close()


def test_sixteen_clients_starting_at_once_each_see_exactly_their_runs_history(live_stack: Stack) -> None:
    key, api, agent_id = new_user(live_stack, max_tokens=24)
    clients = [WsClient(live_stack, key) for _ in range(16)]
    barrier = threading.Barrier(len(clients))

    def run(index: int) -> tuple[str, list[dict[str, Any]]]:
        client = clients[index]
        barrier.wait()
        client.send(
            {"action": "start_agent", "agent_id": agent_id, "input_data": {"query": f"What is fNIRS? ({index})"}}
        )
        execution_id = client.until(lambda f: f["type"] == "execution_started")[-1]["execution_id"]
        return execution_id, seq_frames(client.until_terminal(execution_id, timeout=900), execution_id)

    with ThreadPoolExecutor(len(clients)) as pool:
        results = list(pool.map(run, range(len(clients))))
    for client in clients:
        client.close()
    for execution_id, frames in results:
        assert api.get(f"/executions/{execution_id}").json()["status"] == "completed"
        assert_exactly_the_range(frames, rest_history(api, execution_id))


def test_thirty_sockets_subscribing_at_random_moments_each_get_exactly_their_range(live_stack: Stack) -> None:
    key, api, agent_id = new_user(live_stack, max_tokens=160)
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    # Every run has at least four events (started, two progress, the terminal one), so each
    # subscription's range holds at least its terminal frame.
    plans = [(rng.uniform(0, 4), rng.randint(0, 3)) for _ in range(30)]
    execution_id = api.started(agent_id)

    def subscriber(plan: tuple[float, int]) -> list[dict[str, Any]]:
        time.sleep(plan[0])  # the random moment of subscribing is what this test is about
        return follow(live_stack, key, execution_id, plan[1])

    with ThreadPoolExecutor(len(plans)) as pool:
        received = list(pool.map(subscriber, plans))
    history = rest_history(api, execution_id)
    for (_, after), frames in zip(plans, received, strict=True):
        assert_exactly_the_range(frames, history, after), f"seed {seed}"


@pytest.fixture
def tapped_stack(aws_endpoint: str, runtime: Any) -> Any:
    """A stack whose executor reaches the AWS endpoint through a tap that can hold a request."""
    tap = Tap(int(aws_endpoint.rsplit(":", 1)[1]))
    urls = {"aws_url": aws_endpoint, "runtime_url": runtime.url, "runtime_secret": runtime.secret}
    with running_stack("race", poller_aws_url=tap.url, **urls) as stack:
        try:
            yield stack, tap
        finally:
            for hold in tap.holds:
                hold.release.set()


def test_subscribing_while_the_run_ends_still_gets_every_event_once(tapped_stack: Any) -> None:
    """Forces both races: subscribes that land while the terminal status is being written, and
    subscribes that see the terminal status before the terminal event exists."""
    stack, tap = tapped_stack
    key, api, agent_id = new_user(stack, max_tokens=24)
    status_write = tap.hold(
        rb'(?=.*"dynavera-%s-executions")(?=.*UpdateExpression)(?=.*"completed")' % stack.stage.encode()
    )
    event_write = tap.hold(
        rb'(?=.*"dynavera-%s-events")(?=.*"event_type":\s*\{"S":\s*"completed"\})' % stack.stage.encode()
    )
    execution_id = api.started(agent_id)
    assert status_write.held.wait(120), "the executor never wrote the completed status"
    before = [WsClient(stack, key) for _ in range(4)]
    for after, client in enumerate(before):
        client.send({"action": "subscribe", "execution_id": execution_id, "after": after})
        client.send({"action": "ping"})
        client.until(lambda f: f["type"] == "pong", timeout=10)  # the subscription is recorded
    status_write.release.set()
    assert event_write.held.wait(30), "the executor never wrote the completed event"
    assert api.get(f"/executions/{execution_id}").json()["status"] == "completed"
    during = [WsClient(stack, key) for _ in range(4)]
    for after, client in enumerate(during):
        client.send({"action": "subscribe", "execution_id": execution_id, "after": after})
    time.sleep(0.5)  # lets the subscribe handlers find the status terminal and the event missing
    event_write.release.set()
    history = rest_history(api, execution_id)
    for after, client in enumerate(before + during):
        frames = seq_frames(client.until_terminal(execution_id, timeout=30), execution_id)
        assert_exactly_the_range(frames, history, after % 4)
        client.close()
    late = follow(stack, key, execution_id, 1)
    assert_exactly_the_range(late, history, 1)
