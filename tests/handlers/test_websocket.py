"""The WebSocket protocol in-process (DESIGN §4): $connect checks the token, every bad frame gets
an error frame and the connection stays, ids of other users are refused, and a gone connection
is forgotten on the spot."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.handlers.conftest import Handlers

PING = {"action": "ping"}


def test_bad_or_missing_token_is_refused_at_connect(h: Handlers) -> None:
    from chalicelib.models import Connection

    for token in (None, "", "dv_not-a-real-key"):
        connection_id = uuid.uuid4().hex[:16]
        answer = h.ws("$connect", connection_id, token=token)
        assert answer["statusCode"] == 401 and json.loads(answer["body"])["error"]["code"] == "unauthorized"
        assert Connection.count(connection_id) == 0


def test_ping_is_answered_on_the_connection_and_disconnect_forgets_it(h: Handlers) -> None:
    from chalicelib.models import Connection

    _, key = h.user()
    connection_id = h.connect(key)
    assert h.send(connection_id, PING) == [{"type": "pong"}]
    h.ws("$disconnect", connection_id)
    assert Connection.count(connection_id) == 0


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ("", "invalid_json"),
        ("{}", "unknown_action"),
        (json.dumps({"action": "fly"}), "unknown_action"),
        (json.dumps({"action": 5}), "unknown_action"),
        (json.dumps({"action": "subscribe"}), "validation_error"),
        (json.dumps({"action": "subscribe", "execution_id": "not-a-uuid"}), "validation_error"),
        (json.dumps({"action": "subscribe", "execution_id": str(uuid.uuid4()), "after": -1}), "validation_error"),
        (json.dumps({"action": "subscribe", "execution_id": str(uuid.uuid4())}), "not_found"),
        (json.dumps({"action": "start_agent"}), "validation_error"),
        (
            json.dumps({"action": "start_agent", "agent_id": str(uuid.uuid4()), "input_data": {"query": "x"}}),
            "not_found",
        ),
        (json.dumps({"action": "ping", "request_id": [1]}), "validation_error"),
        (json.dumps({"action": "ping", "pad": "x" * 40_000}), "too_large"),
    ],
)
def test_malformed_frames_get_error_frames_and_the_connection_stays_open(h: Handlers, raw: str, code: str) -> None:
    _, key = h.user()
    connection_id = h.connect(key)
    (reply,) = h.send(connection_id, raw)
    assert reply["type"] == "error" and reply["code"] == code and reply["message"]
    assert h.send(connection_id, PING) == [{"type": "pong"}]


def test_start_agent_validates_input_like_rest(h: Handlers) -> None:
    _, key = h.user()
    agent_id = h.agent(key)
    connection_id = h.connect(key)
    for input_data in ({"query": ""}, "text", {"query": "q" * 4001}, {"text": "no query"}):
        frame = {"action": "start_agent", "agent_id": agent_id, "input_data": input_data, "request_id": "v"}
        (reply,) = h.send(connection_id, frame)
        assert (reply["type"], reply["code"], reply["request_id"]) == ("error", "validation_error", "v")
        rest = h.rest("POST", f"/agents/{agent_id}/executions", key, {"input_data": input_data})
        assert (rest.status_code, rest.json_body["error"]["code"]) == (400, "validation_error")
    # Past API Gateway's 32 KB frame limit nothing in the frame is trusted, request_id included.
    big = {
        "action": "start_agent",
        "agent_id": agent_id,
        "input_data": {"query": "q", "x": "y" * 33_000},
        "request_id": "v",
    }
    (reply,) = h.send(connection_id, big)
    assert (reply["type"], reply["code"], reply.get("request_id")) == ("error", "too_large", None)
    assert h.rest("GET", f"/agents/{agent_id}/executions", key).json_body["executions"] == []


def test_start_agent_takes_the_runs_overrides_like_rest(h: Handlers) -> None:
    _, key = h.user()
    agent_id = h.agent(key)
    connection_id = h.connect(key)
    frame = {"action": "start_agent", "agent_id": agent_id, "input_data": {"query": "q"}}
    (started,) = h.send(connection_id, {**frame, "config": {"top_k": 7, "temperature": 0}})
    config = h.rest("GET", f"/executions/{started['execution_id']}", key).json_body["config"]
    agents = h.rest("GET", f"/agents/{agent_id}", key).json_body["config"]
    assert config == {**agents, "top_k": 7, "temperature": 0}
    for overrides, field in (
        ({"top_k": 0}, "config.top_k"),
        ({"max_tokens": "many"}, "config.max_tokens"),
        ({"system_prompt": "be rude"}, "config.system_prompt"),
        ({"collection": "theirs"}, "config.collection"),
        ([], "config"),
        (None, "config"),
    ):
        (reply,) = h.send(connection_id, {**frame, "config": overrides, "request_id": "o"})
        assert (reply["type"], reply["code"], reply["field"], reply["request_id"]) == (
            "error",
            "validation_error",
            field,
            "o",
        ), reply
        body = {"input_data": {"query": "q"}, "config": overrides}
        rest = h.rest("POST", f"/agents/{agent_id}/executions", key, body)
        assert (rest.status_code, rest.json_body["error"]["field"]) == (400, field)
    # Only the first, valid start made a run.
    assert len(h.rest("GET", f"/agents/{agent_id}/executions", key).json_body["executions"]) == 1


@pytest.mark.parametrize(
    "input_data",
    [
        '{"query": "hi", "f": NaN}',
        '{"query": "hi", "f": 1e400}',
        '{"query": "hi", "n": ' + "9" * 39 + "}",
        '{"query": "hi", "s": "\\ud800"}',
        '{"query": "\\ud800"}',
    ],
    ids=["nan", "1e400", "39-digits", "surrogate-in-input", "surrogate-in-query"],
)
def test_start_agent_frames_go_through_the_strict_parser(h: Handlers, input_data: str) -> None:
    _, key = h.user()
    agent_id = h.agent(key)
    connection_id = h.connect(key)
    frame = f'{{"action": "start_agent", "agent_id": "{agent_id}", "input_data": {input_data}}}'
    (reply,) = h.send(connection_id, frame)
    assert (reply["type"], reply["code"]) == ("error", "invalid_json"), reply
    assert h.rest("GET", f"/agents/{agent_id}/executions", key).json_body["executions"] == []
    assert h.send(connection_id, PING) == [{"type": "pong"}]


def test_an_after_dynamodb_cannot_store_is_refused_not_an_internal_error(h: Handlers) -> None:
    _, key = h.user()
    execution_id = h.start(key, h.agent(key))
    connection_id = h.connect(key)
    (reply,) = h.send(connection_id, f'{{"action": "subscribe", "execution_id": "{execution_id}", "after": {10**40}}}')
    assert (reply["type"], reply["code"]) == ("error", "invalid_json"), reply


def test_other_users_ids_are_refused_and_the_connection_stays_open(h: Handlers) -> None:
    _, alice = h.user()
    agent_id = h.agent(alice)
    execution_id = h.start(alice, agent_id)
    _, mallory = h.user()
    connection_id = h.connect(mallory)
    for frame in (
        {"action": "subscribe", "execution_id": execution_id, "request_id": "a"},
        {"action": "stop_agent", "execution_id": execution_id, "request_id": "b"},
        {"action": "unsubscribe", "execution_id": execution_id, "request_id": "c"},
        {"action": "start_agent", "agent_id": agent_id, "input_data": {"query": "mine?"}, "request_id": "d"},
    ):
        (reply,) = h.send(connection_id, frame)
        assert reply == {
            "type": "error",
            "code": "not_found",
            "message": reply["message"],
            "request_id": frame["request_id"],
        }
    assert h.send(connection_id, PING) == [{"type": "pong"}]
    assert h.execution(execution_id).status == "pending"
    assert len(h.rest("GET", f"/agents/{agent_id}/executions", alice).json_body["executions"]) == 1


def finished(h: Handlers, key: str) -> str:
    agent_id = h.agent(key)
    execution_id = h.start(key, agent_id)
    h.runtime.play({"type": "token", "text": "Hi"}, {"type": "result", "output": {"answer": "Hi", "sources": []}})
    assert h.deliver() == 1
    return execution_id


@pytest.mark.parametrize("after", [0, 1, 2, 3])
def test_subscribe_after_k_on_a_finished_run_replays_exactly_the_rest(h: Handlers, after: int) -> None:
    _, key = h.user()
    execution_id = finished(h, key)
    connection_id = h.connect(key)
    frames: list[dict[str, Any]] = h.send(
        connection_id, {"action": "subscribe", "execution_id": execution_id, "after": after}
    )
    assert [f["seq"] for f in frames] == list(range(after + 1, 4))
    assert not frames or frames[-1]["type"] == "execution_completed"


def test_a_connection_reported_gone_is_deleted_on_the_spot(h: Handlers) -> None:
    from chalicelib.models import Connection, Subscription

    _, key = h.user()
    agent_id = h.agent(key)
    connection_id = h.connect(key)
    (started,) = h.send(connection_id, {"action": "start_agent", "agent_id": agent_id, "input_data": {"query": "q"}})
    h.connections.gone.add(connection_id)
    h.runtime.play({"type": "result", "output": {"answer": "", "sources": []}})
    h.deliver()
    assert h.execution(started["execution_id"]).status == "completed"
    assert Connection.count(connection_id) == 0
    assert Subscription.count(started["execution_id"]) == 0
