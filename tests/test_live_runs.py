"""Live runs end to end: a real WebSocket on the local gateway, the poller feeding the executor,
the moto server, and the real runtime process with the real model (DESIGN §4, §5)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import boto3
import pytest

from local.stack import Stack
from tests.conftest import Api, create_key, own_corpus
from tests.live import WsClient, seq_frames, wait_until

QUESTION = "What does fNIRS measure?"


@pytest.fixture(scope="module")
def user(live_stack: Stack) -> dict[str, Any]:
    key = create_key(live_stack, f"live-{uuid.uuid4().hex[:6]}")
    api = Api(live_stack, key)
    own_corpus(live_stack, key)
    agent = api.post(
        "/agents",
        json={"name": "fNIRS assistant", "config": {"collection": "fnirs", "temperature": 0, "max_tokens": 48}},
    )
    assert agent.status_code == 201
    return {"key": key, "api": api, "agent_id": agent.json()["agent_id"]}


@pytest.fixture(scope="module")
def finished_run(live_stack: Stack, user: dict[str, Any]) -> dict[str, Any]:
    """One run started over the WebSocket and followed to its end."""
    client = WsClient(live_stack, user["key"])
    client.send(
        {"action": "start_agent", "agent_id": user["agent_id"], "input_data": {"query": QUESTION}, "request_id": "r-1"}
    )
    started = client.until(lambda f: f["type"] == "execution_started")[-1]
    frames = client.until_terminal(started["execution_id"])
    client.close()
    return {"started": started, "frames": frames, "execution_id": started["execution_id"]}


def table(stack: Stack, name: str) -> Any:
    return boto3.resource("dynamodb", endpoint_url=stack.aws_url, region_name="us-east-1").Table(
        f"dynavera-{stack.stage}-{name}"
    )


def rest_events(api: Api, execution_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = api.get(f"/executions/{execution_id}/events", params={"after": after, "limit": 50}).json()
        events += page["events"]
        if page["next_after"] is None:
            return events
        after = page["next_after"]


def start_rest(user: dict[str, Any], query: str = QUESTION, **headers: str) -> str:
    response = user["api"].post(
        f"/agents/{user['agent_id']}/executions", json={"input_data": {"query": query}}, headers=headers
    )
    assert response.status_code == 202, response.text
    return response.json()["execution_id"]


def test_run_streams_events_tokens_and_a_cited_answer(finished_run: dict[str, Any], user: dict[str, Any]) -> None:
    started = finished_run["started"]
    assert started["request_id"] == "r-1" and started["agent_id"] == user["agent_id"] and started["status"] == "pending"
    frames = seq_frames(finished_run["frames"], finished_run["execution_id"])
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    kinds = [f.get("event_type", f["type"]) for f in frames]
    assert kinds[0] == "started"
    assert [f["content"]["stage"] for f in frames if f.get("event_type") == "progress"][:2] == [
        "retrieving",
        "generating",
    ]
    assert "token" in kinds and kinds[-1] == "execution_completed"
    output = frames[-1]["output_data"]
    tokens = "".join(f["content"]["text"] for f in frames if f.get("event_type") == "token")
    assert output["answer"].strip() and tokens.strip() == output["answer"].strip()
    assert output["sources"] and all(s["source"].endswith((".md", ".txt", ".pdf")) for s in output["sources"])


def test_rest_history_equals_what_the_client_saw(finished_run: dict[str, Any], user: dict[str, Any]) -> None:
    execution_id = finished_run["execution_id"]
    frames = seq_frames(finished_run["frames"], execution_id)
    events = rest_events(user["api"], execution_id)
    assert [e["seq"] for e in events] == [f["seq"] for f in frames]
    for event, frame in zip(events[:-1], frames[:-1], strict=True):
        assert (event["event_type"], event["content"], event["timestamp"]) == (
            frame["event_type"],
            frame["content"],
            frame["timestamp"],
        )
    assert events[-1]["event_type"] == "completed"
    execution = user["api"].get(f"/executions/{execution_id}").json()
    assert execution["status"] == "completed" and execution["started_at"] and execution["completed_at"]
    assert execution["output_data"]["answer"] == events[-1]["content"]["answer"] == frames[-1]["output_data"]["answer"]


def test_subscribe_after_k_on_a_running_execution_misses_nothing(live_stack: Stack, user: dict[str, Any]) -> None:
    execution_id = start_rest(user)
    wait_until(lambda: len(rest_events(user["api"], execution_id)) >= 3, 60, "three events")
    client = WsClient(live_stack, user["key"])
    client.send({"action": "subscribe", "execution_id": execution_id, "after": 2})
    frames = seq_frames(client.until_terminal(execution_id), execution_id)
    client.close()
    assert [f["seq"] for f in frames] == list(range(3, frames[-1]["seq"] + 1))
    assert [e["seq"] for e in rest_events(user["api"], execution_id)] == list(range(1, frames[-1]["seq"] + 1))


def test_two_clients_on_one_execution_both_get_every_event(live_stack: Stack, user: dict[str, Any]) -> None:
    first, second = WsClient(live_stack, user["key"]), WsClient(live_stack, user["key"])
    first.send({"action": "start_agent", "agent_id": user["agent_id"], "input_data": {"query": "What is HbO?"}})
    execution_id = first.until(lambda f: f["type"] == "execution_started")[-1]["execution_id"]
    second.send({"action": "subscribe", "execution_id": execution_id})
    seen_first = seq_frames(first.until_terminal(execution_id), execution_id)
    seen_second = seq_frames(second.until_terminal(execution_id), execution_id)
    first.close()
    second.close()
    assert (
        [f["seq"] for f in seen_first] == [f["seq"] for f in seen_second] == list(range(1, seen_first[-1]["seq"] + 1))
    )
    assert seen_first == seen_second


def test_stop_mid_generation_ends_stopped_within_a_second(live_stack: Stack, user: dict[str, Any]) -> None:
    api: Api = user["api"]
    long_agent = api.post("/agents", json={"name": "long", "config": {"max_tokens": 1024, "temperature": 0}}).json()
    client = WsClient(live_stack, user["key"])
    client.send(
        {
            "action": "start_agent",
            "agent_id": long_agent["agent_id"],
            "input_data": {"query": "Explain everything about fNIRS in detail."},
        }
    )
    execution_id = client.until(lambda f: f["type"] == "execution_started")[-1]["execution_id"]
    client.until(lambda f: f.get("event_type") == "token")
    asked = time.monotonic()
    client.send({"action": "stop_agent", "execution_id": execution_id})
    frames = client.until_terminal(execution_id, timeout=10)
    elapsed = time.monotonic() - asked
    client.close()
    assert frames[-1]["type"] == "execution_stopped"
    assert elapsed < 1.0, f"stopped after {elapsed:.2f} s"
    execution = api.get(f"/executions/{execution_id}").json()
    assert execution["status"] == "stopped" and execution["output_data"] is None
    kinds = [e["event_type"] for e in rest_events(api, execution_id)]
    assert kinds[-1] == "stopped" and sum(k in ("completed", "error", "stopped") for k in kinds) == 1


def test_vanished_client_leaves_no_rows_and_the_run_completes(live_stack: Stack) -> None:
    user_id = f"vanish-{uuid.uuid4().hex[:6]}"
    key = create_key(live_stack, user_id)
    api = Api(live_stack, key)
    agent_id = api.post("/agents", json={"name": "v", "config": {"max_tokens": 32}}).json()["agent_id"]
    client = WsClient(live_stack, key)
    client.send({"action": "start_agent", "agent_id": agent_id, "input_data": {"query": QUESTION}})
    execution_id = client.until(lambda f: f["type"] == "execution_started")[-1]["execution_id"]
    client.ws.socket.close()  # gone without a close frame
    wait_until(lambda: api.get(f"/executions/{execution_id}").json()["status"] == "completed", 120, "the run completed")
    subscriptions = table(live_stack, "subscriptions").query(
        KeyConditionExpression="execution_id = :e", ExpressionAttributeValues={":e": execution_id}
    )
    assert subscriptions["Items"] == []
    connections = table(live_stack, "connections").scan(
        FilterExpression="user_id = :u", ExpressionAttributeValues={":u": user_id}
    )
    assert connections["Items"] == []
