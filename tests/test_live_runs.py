"""Live runs end to end: a real WebSocket on the local gateway, the poller feeding the executor,
the moto server, and the real runtime process with the real model (DESIGN §4, §5)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
import pytest
from websockets.exceptions import InvalidStatus

from local.stack import Stack
from tests.conftest import Api, create_key
from tests.live import WsClient, seq_frames, wait_until

QUESTION = "What does fNIRS measure?"


@pytest.fixture(scope="module")
def user(live_stack: Stack) -> dict[str, Any]:
    key = create_key(live_stack, f"live-{uuid.uuid4().hex[:6]}")
    api = Api(live_stack, key)
    agent = api.post("/agents", json={"name": "fNIRS assistant", "config": {"collection": "fnirs", "temperature": 0, "max_tokens": 48}})
    assert agent.status_code == 201
    return {"key": key, "api": api, "agent_id": agent.json()["agent_id"]}


@pytest.fixture(scope="module")
def finished_run(live_stack: Stack, user: dict[str, Any]) -> dict[str, Any]:
    """One run started over the WebSocket and followed to its end."""
    client = WsClient(live_stack, user["key"])
    client.send({"action": "start_agent", "agent_id": user["agent_id"], "input_data": {"query": QUESTION}, "request_id": "r-1"})
    started = client.until(lambda f: f["type"] == "execution_started")[-1]
    frames = client.until_terminal(started["execution_id"])
    client.close()
    return {"started": started, "frames": frames, "execution_id": started["execution_id"]}


def table(stack: Stack, name: str) -> Any:
    return boto3.resource("dynamodb", endpoint_url=stack.aws_url, region_name="us-east-1").Table(f"dynavera-{stack.stage}-{name}")


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
    response = user["api"].post(f"/agents/{user['agent_id']}/executions", json={"input_data": {"query": query}}, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["execution_id"]


def test_run_streams_events_tokens_and_a_cited_answer(finished_run: dict[str, Any], user: dict[str, Any]) -> None:
    started = finished_run["started"]
    assert started["request_id"] == "r-1" and started["agent_id"] == user["agent_id"] and started["status"] == "pending"
    frames = seq_frames(finished_run["frames"], finished_run["execution_id"])
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    kinds = [f.get("event_type", f["type"]) for f in frames]
    assert kinds[0] == "started"
    assert [f["content"]["stage"] for f in frames if f.get("event_type") == "progress"][:2] == ["retrieving", "generating"]
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
        assert (event["event_type"], event["content"], event["timestamp"]) == (frame["event_type"], frame["content"], frame["timestamp"])
    assert events[-1]["event_type"] == "completed"
    execution = user["api"].get(f"/executions/{execution_id}").json()
    assert execution["status"] == "completed" and execution["started_at"] and execution["completed_at"]
    assert execution["output_data"]["answer"] == events[-1]["content"]["answer"] == frames[-1]["output_data"]["answer"]


def test_subscribe_after_k_on_a_finished_execution_replays_exactly_the_rest(live_stack: Stack, finished_run: dict[str, Any], user: dict[str, Any]) -> None:
    execution_id = finished_run["execution_id"]
    last = seq_frames(finished_run["frames"], execution_id)[-1]["seq"]
    client = WsClient(live_stack, user["key"])
    client.send({"action": "subscribe", "execution_id": execution_id, "after": 2})
    frames = client.until_terminal(execution_id, timeout=10)
    client.send({"action": "ping"})
    client.until(lambda f: f["type"] == "pong", timeout=10)
    client.close()
    assert [f["seq"] for f in frames] == list(range(3, last + 1))


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
    assert [f["seq"] for f in seen_first] == [f["seq"] for f in seen_second] == list(range(1, seen_first[-1]["seq"] + 1))
    assert seen_first == seen_second


def test_stop_mid_generation_ends_stopped_within_a_second(live_stack: Stack, user: dict[str, Any]) -> None:
    api: Api = user["api"]
    long_agent = api.post("/agents", json={"name": "long", "config": {"max_tokens": 1024, "temperature": 0}}).json()
    client = WsClient(live_stack, user["key"])
    client.send({"action": "start_agent", "agent_id": long_agent["agent_id"], "input_data": {"query": "Explain everything about fNIRS in detail."}})
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


def test_redelivered_message_neither_duplicates_events_nor_reruns(live_stack: Stack, user: dict[str, Any], finished_run: dict[str, Any]) -> None:
    sqs = boto3.client("sqs", endpoint_url=live_stack.aws_url, region_name="us-east-1")
    queue_url = sqs.get_queue_url(QueueName=f"dynavera-{live_stack.stage}-runs")["QueueUrl"]
    execution_id = finished_run["execution_id"]
    before = rest_events(user["api"], execution_id)
    message = {"execution_id": execution_id, "agent_id": user["agent_id"], "user_id": "whoever"}

    # A duplicate of a finished run, and a run whose message arrives twice from the start.
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(message))
    fresh = start_rest(user, "What is a short-separation channel?")
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({**message, "execution_id": fresh}))

    def drained() -> bool:
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        status = user["api"].get(f"/executions/{fresh}").json()["status"]
        return status == "completed" and attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesNotVisible"] == "0"

    wait_until(drained, 120, "both duplicates consumed")
    assert rest_events(user["api"], execution_id) == before
    events = rest_events(user["api"], fresh)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["event_type"] for e in events].count("started") == 1
    assert [e["event_type"] for e in events].count("completed") == 1


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
    connections = table(live_stack, "connections").scan(FilterExpression="user_id = :u", ExpressionAttributeValues={":u": user_id})
    assert connections["Items"] == []


def test_connection_reported_gone_is_deleted_on_the_spot(live_stack: Stack, user: dict[str, Any]) -> None:
    """A row for a connection the gateway does not know (API Gateway answers 410 Gone for it)."""
    execution_id = start_rest(user)
    ghost = f"ghost{uuid.uuid4().hex[:8]}"
    endpoint = f"http://127.0.0.1:{live_stack.management_port}/{live_stack.stage}"
    expires = int(time.time()) + 3600
    table(live_stack, "connections").put_item(
        Item={"connection_id": ghost, "user_id": "someone", "endpoint": endpoint, "connected_at": "x", "expires_at": expires}
    )
    table(live_stack, "subscriptions").put_item(
        Item={"execution_id": execution_id, "connection_id": ghost, "endpoint": endpoint, "expires_at": expires}
    )
    wait_until(lambda: user["api"].get(f"/executions/{execution_id}").json()["status"] == "completed", 120, "the run completed")
    assert "Item" not in table(live_stack, "connections").get_item(Key={"connection_id": ghost})
    assert "Item" not in table(live_stack, "subscriptions").get_item(Key={"execution_id": execution_id, "connection_id": ghost})


def test_bad_or_missing_token_is_refused_at_connect(live_stack: Stack) -> None:
    for key in ("", "dv_not-a-real-key"):
        with pytest.raises(InvalidStatus) as refused:
            WsClient(live_stack, key)
        assert refused.value.response.status_code == 401


def test_other_users_ids_are_refused_and_the_connection_stays_open(live_stack: Stack, user: dict[str, Any], finished_run: dict[str, Any]) -> None:
    mallory = WsClient(live_stack, create_key(live_stack, f"mallory-{uuid.uuid4().hex[:6]}"))
    theirs = finished_run["execution_id"]
    for frame in (
        {"action": "subscribe", "execution_id": theirs, "request_id": "a"},
        {"action": "stop_agent", "execution_id": theirs, "request_id": "b"},
        {"action": "unsubscribe", "execution_id": theirs, "request_id": "c"},
        {"action": "start_agent", "agent_id": user["agent_id"], "input_data": {"query": "mine?"}, "request_id": "d"},
    ):
        mallory.send(frame)
        reply = mallory.next_frame(timeout=10)
        assert reply == {"type": "error", "code": "not_found", "message": reply["message"], "request_id": frame["request_id"]}
    mallory.send({"action": "ping"})
    assert mallory.next_frame(timeout=10) == {"type": "pong"}
    mallory.close()
    assert user["api"].get(f"/executions/{theirs}").json()["status"] == "completed"
    executions = user["api"].get(f"/agents/{user['agent_id']}/executions", params={"limit": 100}).json()["executions"]
    assert all(e["input_data"]["query"] != "mine?" for e in executions)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ("{}", "unknown_action"),
        (json.dumps({"action": "fly"}), "unknown_action"),
        (json.dumps({"action": 5}), "unknown_action"),
        (json.dumps({"action": "subscribe"}), "validation_error"),
        (json.dumps({"action": "subscribe", "execution_id": "not-a-uuid"}), "validation_error"),
        (json.dumps({"action": "subscribe", "execution_id": str(uuid.uuid4()), "after": -1}), "validation_error"),
        (json.dumps({"action": "subscribe", "execution_id": str(uuid.uuid4())}), "not_found"),
        (json.dumps({"action": "start_agent"}), "validation_error"),
        (json.dumps({"action": "start_agent", "agent_id": str(uuid.uuid4()), "input_data": {"query": "x"}}), "not_found"),
        (json.dumps({"action": "ping", "pad": "x" * 40_000}), "too_large"),
    ],
)
def test_malformed_frames_get_error_frames_and_the_connection_stays_open(live_stack: Stack, user: dict[str, Any], raw: str, code: str) -> None:
    client = WsClient(live_stack, user["key"])
    client.send(raw)
    reply = client.next_frame(timeout=10)
    assert reply["type"] == "error" and reply["code"] == code and reply["message"]
    client.send({"action": "ping"})
    assert client.next_frame(timeout=10) == {"type": "pong"}
    client.close()


def test_start_agent_validates_input_like_rest(live_stack: Stack, user: dict[str, Any]) -> None:
    client = WsClient(live_stack, user["key"])
    for input_data, code in (({"query": ""}, "validation_error"), ("text", "validation_error"), ({"query": "q" * 4001}, "validation_error")):
        client.send({"action": "start_agent", "agent_id": user["agent_id"], "input_data": input_data, "request_id": "v"})
        reply = client.next_frame(timeout=10)
        assert (reply["type"], reply["code"], reply["request_id"]) == ("error", code, "v")
    # Past API Gateway's 32 KB frame limit nothing in the frame is trusted, request_id included.
    client.send({"action": "start_agent", "agent_id": user["agent_id"], "input_data": {"query": "q", "x": "y" * 33_000}, "request_id": "v"})
    reply = client.next_frame(timeout=10)
    assert (reply["type"], reply["code"], reply.get("request_id")) == ("error", "too_large", None)
    executions = user["api"].get(f"/agents/{user['agent_id']}/executions", params={"limit": 100}).json()["executions"]
    assert not [e for e in executions if e["input_data"]["query"] in ("", "q", "q" * 4001)]
    client.close()


def test_sweeper_fails_a_run_left_running_past_its_deadline(runtime_down_stack: Stack) -> None:
    stack = runtime_down_stack
    execution_id = str(uuid.uuid4())
    table(stack, "executions").put_item(
        Item={
            "execution_id": execution_id, "agent_id": str(uuid.uuid4()), "user_id": "u", "status": "running",
            "input_data": json.dumps({"query": "q"}), "config": "{}", "stop_requested": False,
            "created_at": "2026-01-01T00:00:00.000000Z", "started_at": "2026-01-01T00:00:01.000000Z",
        }
    )

    def swept() -> dict[str, Any] | None:
        item = table(stack, "executions").get_item(Key={"execution_id": execution_id}, ConsistentRead=True)["Item"]
        return item if item["status"] == "failed" else None

    item = wait_until(swept, 30, "the sweeper failed the run")
    assert "deadline" in item["error_message"]
    events = wait_until(
        lambda: table(stack, "events").query(KeyConditionExpression="execution_id = :e", ExpressionAttributeValues={":e": execution_id})["Items"],
        10,
        "the error event",
    )
    assert [e["event_type"] for e in events] == ["error"]


def test_stop_of_pending_execution_never_reaches_runtime(aws_endpoint: str, runtime: Any) -> None:
    from tests.conftest import make_stack

    stack = make_stack("pend", aws_url=aws_endpoint, runtime_url=runtime.url, runtime_secret=runtime.secret)
    try:
        stack.start_aws()
        stack.start_gateway()
        api = Api(stack, create_key(stack, "p"))
        agent_id = api.post("/agents", json={"name": "p"}).json()["agent_id"]
        execution_id = api.post(f"/agents/{agent_id}/executions", json={"input_data": {"query": QUESTION}}).json()["execution_id"]
        assert api.post(f"/executions/{execution_id}/stop").json()["status"] == "stopped"
        stack.start_poller()
        sqs = boto3.client("sqs", endpoint_url=aws_endpoint, region_name="us-east-1")
        queue_url = sqs.get_queue_url(QueueName=f"dynavera-{stack.stage}-runs")["QueueUrl"]

        def consumed() -> bool:
            attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            return attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesNotVisible"] == "0"

        wait_until(consumed, 30, "the poller consumed the message")
        execution = api.get(f"/executions/{execution_id}").json()
        assert execution["status"] == "stopped" and execution["started_at"] is None
        assert [e["event_type"] for e in api.get(f"/executions/{execution_id}/events").json()["events"]] == ["stopped"]
    finally:
        stack.stop()
