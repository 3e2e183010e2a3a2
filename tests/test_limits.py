"""Per-user limits (DESIGN §3): at each limit one more is refused — 429 with Retry-After and a
code naming the limit on REST, an `error` frame on the WebSocket, 429 on the upgrade — and
once something ends or is deleted the next is allowed again; `GET /limits` says where the
caller stands. The request rate per key is the edge's, played by the local gateway. Real
gateway over HTTP and WebSocket, on the moto server; runs stay pending (no poller)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from chalicelib import limits
from local.stack import Stack
from local.throttle import RateLimit
from tests.conftest import Api, create_key, make_stack
from tests.live import WsClient, wait_until

SMALL = {"runs_in_flight": 2, "connections": 3, "subscribers_per_execution": 2, "agents": 2, "keys": 3}


@pytest.fixture(scope="module")
def limited_stack(aws_endpoint: str) -> Iterator[Stack]:
    env = {f"DYNAVERA_LIMIT_{name.upper()}": str(value) for name, value in SMALL.items()}
    env["DYNAVERA_LIMIT_REQUESTS_PER_WINDOW"] = "400"
    stack = make_stack("limits", aws_url=aws_endpoint, extra_env=env)
    stack.start_aws()
    stack.start_gateway()
    yield stack
    stack.stop()


def new_user(stack: Stack) -> tuple[str, Api]:
    key = create_key(stack, f"limited-{uuid.uuid4().hex[:6]}")
    return key, Api(stack, key)


def assert_limited(response: Any, name: str) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == limits.code(name) == f"{name}_limit"
    assert str(SMALL[name]) in response.json()["error"]["message"]
    assert int(response.headers["Retry-After"]) == limits.RETRY_AFTER_SECONDS[name]


def used(api: Api, name: str) -> int:
    return api.get("/limits").json()["limits"][name]["used"]


def test_limits_report_every_limit_with_the_callers_use(limited_stack: Stack) -> None:
    _, api = new_user(limited_stack)
    answer = api.get("/limits")
    assert answer.status_code == 200
    reported = answer.json()["limits"]
    assert set(reported) == set(limits.PER_USER)
    assert reported["agents"] == {"limit": 2, "used": 0}
    assert reported["keys"] == {"limit": 3, "used": 1}
    assert reported["documents"] == {"limit": limits.Limits().documents, "used": 0}
    assert reported["subscribers_per_execution"]["limit"] == 2
    assert Api(limited_stack, None).get("/limits").status_code == 401
    assert api.get("/limits?agents=1").status_code == 400


def test_agents_limit_refuses_one_more_until_one_is_deleted(limited_stack: Stack) -> None:
    _, api = new_user(limited_stack)
    made = [api.post("/agents", json={"name": f"a{i}"}).json()["agent_id"] for i in range(2)]
    assert_limited(api.post("/agents", json={"name": "one too many"}), "agents")
    assert used(api, "agents") == 2
    assert api.delete(f"/agents/{made[0]}").status_code == 204
    assert api.delete(f"/agents/{made[0]}").status_code == 404  # a second delete gives nothing back
    assert used(api, "agents") == 1
    assert api.post("/agents", json={"name": "again"}).status_code == 201
    assert_limited(api.post("/agents", json={"name": "one too many"}), "agents")
    # A refused create leaves nothing behind, and a bad body is a 400, not a slot taken.
    assert len(api.get("/agents").json()["agents"]) == 2
    _, other = new_user(limited_stack)
    assert other.post("/agents", json={"name": ""}).status_code == 400
    assert used(other, "agents") == 0


def test_runs_in_flight_limit_refuses_on_rest_and_websocket_until_one_ends(limited_stack: Stack) -> None:
    key, api = new_user(limited_stack)
    agent_id = api.post("/agents", json={"name": "runs"}).json()["agent_id"]
    first = api.start(agent_id, "q", **{"Idempotency-Key": "first"}).json()["execution_id"]
    api.start(agent_id, "q")
    assert_limited(api.start(agent_id, "q"), "runs_in_flight")
    # A retry of a start that went through still answers with its execution, at the limit.
    again = api.start(agent_id, "q", **{"Idempotency-Key": "first"})
    assert again.status_code == 202 and again.json()["execution_id"] == first
    assert_limited(api.start(agent_id, "q", **{"Idempotency-Key": "new"}), "runs_in_flight")
    client = WsClient(limited_stack, key)
    try:
        client.send({"action": "start_agent", "agent_id": agent_id, "input_data": {"query": "q"}, "request_id": 7})
        refused = client.next_frame(timeout=10)
        assert refused["type"] == "error" and refused["code"] == "runs_in_flight_limit"
        assert refused["request_id"] == 7 and "2" in refused["message"]
        assert api.post(f"/executions/{first}/stop").status_code == 202
        assert used(api, "runs_in_flight") == 1
        client.send({"action": "start_agent", "agent_id": agent_id, "input_data": {"query": "q"}})
        assert client.next_frame(timeout=10)["type"] == "execution_started"
    finally:
        client.close()
    assert used(api, "runs_in_flight") == 2
    assert api.post(f"/executions/{first}/stop").status_code == 202  # stopped twice: given back once
    assert used(api, "runs_in_flight") == 2


def test_connections_limit_refuses_the_upgrade_until_one_closes(limited_stack: Stack) -> None:
    key, api = new_user(limited_stack)
    clients = [WsClient(limited_stack, key) for _ in range(3)]
    try:
        with pytest.raises(InvalidStatus) as refused:
            WsClient(limited_stack, key)
        assert refused.value.response.status_code == 429
        assert refused.value.response.headers["Retry-After"] == str(limits.RETRY_AFTER_SECONDS["connections"])
        assert b"connections_limit" in refused.value.response.body
        clients.pop().close()
        wait_until(lambda: used(api, "connections") == 2, 10, "the closed connection let go")
        clients.append(WsClient(limited_stack, key))
        clients[-1].send({"action": "ping"})
        assert clients[-1].next_frame(timeout=10) == {"type": "pong"}
    finally:
        for client in clients:
            client.close()


def test_subscribers_per_execution_limit_refuses_a_third_until_one_unsubscribes(limited_stack: Stack) -> None:
    key, api = new_user(limited_stack)
    agent_id = api.post("/agents", json={"name": "subs"}).json()["agent_id"]
    execution_id = api.start(agent_id, "q").json()["execution_id"]
    clients = [WsClient(limited_stack, key) for _ in range(3)]
    try:
        # One after another: the count is read before the write, so subscribes racing each
        # other may pass it together (bounded by the connections limit).
        replies = []
        for client in clients:
            client.send({"action": "subscribe", "execution_id": execution_id})
            client.send({"action": "ping"})
            replies.append(client.next_frame(timeout=10))
        assert [r["type"] for r in replies] == ["pong", "pong", "error"]
        refused = replies[2]
        assert refused["type"] == "error" and refused["code"] == "subscribers_per_execution_limit"
        clients[0].send({"action": "subscribe", "execution_id": execution_id, "after": 0})  # a resume is no newcomer
        clients[0].send({"action": "unsubscribe", "execution_id": execution_id})
        clients[0].send({"action": "ping"})
        assert clients[0].next_frame(timeout=10) == {"type": "pong"}
        clients[2].send({"action": "subscribe", "execution_id": execution_id})
        clients[2].send({"action": "ping"})
        assert clients[2].next_frame(timeout=10) == {"type": "pong"}
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("after", [-1, 10**9 + 1, "5", True, 1.5, None])
def test_subscribe_after_is_bounded_like_rests(limited_stack: Stack, after: Any) -> None:
    key, api = new_user(limited_stack)
    agent_id = api.post("/agents", json={"name": "after"}).json()["agent_id"]
    execution_id = api.start(agent_id, "q").json()["execution_id"]
    client = WsClient(limited_stack, key)
    try:
        client.send({"action": "subscribe", "execution_id": execution_id, "after": after})
        refused = client.next_frame(timeout=10)
        assert refused["type"] == "error" and refused["code"] == "validation_error" and "after" in refused["message"]
        client.send({"action": "subscribe", "execution_id": execution_id, "after": 10**9})
        client.send({"action": "ping"})
        assert client.next_frame(timeout=10) == {"type": "pong"}
    finally:
        client.close()


def test_request_rate_per_key_is_refused_with_retry_after_never_a_5xx(aws_endpoint: str) -> None:
    stack = make_stack("rate", aws_url=aws_endpoint, extra_env={"DYNAVERA_LIMIT_REQUESTS_PER_WINDOW": "20"})
    stack.start_aws()
    stack.start_gateway()
    try:
        _, api = new_user(stack)
        answers = [api.get("/agents").status_code for _ in range(20)]
        assert answers == [200] * 20
        refused = api.get("/agents")
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit"
        assert 1 <= int(refused.headers["Retry-After"]) <= limits.RATE_WINDOW_SECONDS
        # Per key: another key of the same user, and calls with no key at all, are not counted.
        _, other = new_user(stack)
        assert other.get("/agents").status_code == 200
        assert httpx.get(f"{stack.api_url}/health").status_code == 200
        bad = httpx.get(f"{stack.api_url}/agents", headers={"Authorization": "Bearer made-up"})
        assert bad.status_code == 401
        statuses = {api.post("/agents", json={"name": "x"}).status_code for _ in range(10)}
        assert statuses == {429}
    finally:
        stack.stop()


def test_rate_window_lets_a_client_that_waited_as_told_through() -> None:
    rate = RateLimit(requests=3, window=0.5)
    assert [rate.retry_after("k") for _ in range(3)] == [None] * 3
    assert rate.retry_after("k") == 1
    assert rate.retry_after("other") is None
    deadline = time.monotonic() + 5
    while rate.retry_after("k") is not None:
        assert time.monotonic() < deadline, "the window never moved on"
        time.sleep(0.05)
