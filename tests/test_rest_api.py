"""The REST API of DESIGN §3, over real HTTP through the local gateway, on the moto server."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from local.stack import Stack
from tests.conftest import Api

QUERY = {"input_data": {"query": "What is fNIRS?"}}


def new_agent(api: Api, **fields: Any) -> dict[str, Any]:
    response = api.post("/agents", json={"name": f"agent-{uuid.uuid4().hex[:8]}", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def queue_messages(sqs: Any, stack: Stack) -> list[dict[str, Any]]:
    """Every message on the stage's runs queue, read and then made visible again."""
    url = sqs.get_queue_url(QueueName=f"dynavera-{stack.stage}-runs")["QueueUrl"]
    seen: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            break
        seen.extend(batch)
    for message in seen:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return [json.loads(m["Body"]) for m in seen]


def test_agent_lifecycle(alice: Api) -> None:
    agent = new_agent(alice, description="reads papers", config={"top_k": 3})
    assert uuid.UUID(agent["agent_id"]).version == 4
    assert agent["config"]["top_k"] == 3 and agent["config"]["max_tokens"] > 0
    assert agent["created_at"].endswith("Z") and agent["status"] == "active"

    got = alice.get(f"/agents/{agent['agent_id']}")
    assert got.status_code == 200 and got.json() == agent

    patched = alice.patch(f"/agents/{agent['agent_id']}", json={"name": "renamed", "config": {"temperature": 0}})
    assert patched.status_code == 200
    assert patched.json()["name"] == "renamed"
    assert patched.json()["config"]["temperature"] == 0 and patched.json()["config"]["top_k"] == 3
    assert patched.json()["updated_at"] > agent["updated_at"]

    assert alice.delete(f"/agents/{agent['agent_id']}").status_code == 204
    assert_error(alice.get(f"/agents/{agent['agent_id']}"), 404, "not_found")
    assert_error(alice.delete(f"/agents/{agent['agent_id']}"), 404, "not_found")


def test_agents_paginate_without_duplicates_or_gaps(rest_stack: Stack) -> None:
    from tests.conftest import create_key

    carol = Api(rest_stack, create_key(rest_stack, f"carol-{uuid.uuid4().hex[:6]}"))
    made = {new_agent(carol)["agent_id"] for _ in range(7)}
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params = {"limit": 3, **({"next_token": token} if token else {})}
        page = carol.get("/agents", params=params).json()
        seen += [a["agent_id"] for a in page["agents"]]
        pages += 1
        token = page["next_token"]
        if token is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == made


def test_start_execution_writes_pending_and_queues_the_run(alice: Api, rest_stack: Stack, sqs: Any) -> None:
    agent = new_agent(alice)
    response = alice.post(f"/agents/{agent['agent_id']}/executions", json=QUERY)
    assert response.status_code == 202
    execution = response.json()
    assert execution["status"] == "pending" and execution["input_data"] == QUERY["input_data"]
    assert execution["output_data"] is None and execution["started_at"] is None

    assert alice.get(f"/executions/{execution['execution_id']}").json() == execution
    messages = [m for m in queue_messages(sqs, rest_stack) if m["execution_id"] == execution["execution_id"]]
    assert len(messages) == 1
    assert messages[0]["agent_id"] == agent["agent_id"] and messages[0]["user_id"]


def test_idempotency_key_gives_one_execution_and_one_message(alice: Api, rest_stack: Stack, sqs: Any) -> None:
    agent = new_agent(alice)
    path = f"/agents/{agent['agent_id']}/executions"
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = alice.post(path, json=QUERY, headers=key)
    second = alice.post(path, json={"input_data": {"query": "different"}}, headers=key)
    assert first.status_code == second.status_code == 202
    assert first.json()["execution_id"] == second.json()["execution_id"]
    listed = alice.get(path).json()["executions"]
    assert [e["execution_id"] for e in listed] == [first.json()["execution_id"]]
    queued = [m for m in queue_messages(sqs, rest_stack) if m["agent_id"] == agent["agent_id"]]
    assert len(queued) == 1

    other = new_agent(alice)
    assert_error(alice.post(f"/agents/{other['agent_id']}/executions", json=QUERY, headers=key), 409, "conflict")
    assert_error(alice.post(path, json=QUERY, headers={"Idempotency-Key": "has space"}), 400, "validation_error")


def test_executions_list_newest_first_and_paginate(alice: Api) -> None:
    agent = new_agent(alice)
    path = f"/agents/{agent['agent_id']}/executions"
    started = [alice.post(path, json=QUERY).json()["execution_id"] for _ in range(5)]
    first = alice.get(path, params={"limit": 2}).json()
    second = alice.get(path, params={"limit": 2, "next_token": first["next_token"]}).json()
    third = alice.get(path, params={"limit": 2, "next_token": second["next_token"]}).json()
    ids = [e["execution_id"] for page in (first, second, third) for e in page["executions"]]
    assert ids == list(reversed(started))
    assert third["next_token"] is None


def test_stop_of_pending_execution_records_stopped_event(alice: Api) -> None:
    agent = new_agent(alice)
    execution = alice.post(f"/agents/{agent['agent_id']}/executions", json=QUERY).json()
    stopped = alice.post(f"/executions/{execution['execution_id']}/stop")
    assert stopped.status_code == 202 and stopped.json()["status"] == "stopped"
    events = alice.get(f"/executions/{execution['execution_id']}/events").json()
    assert [(e["seq"], e["event_type"]) for e in events["events"]] == [(1, "stopped")]
    assert events["next_after"] is None
    again = alice.post(f"/executions/{execution['execution_id']}/stop")
    assert again.status_code == 202 and again.json()["status"] == "stopped"


def test_another_users_ids_answer_404_on_every_route(alice: Api, bob: Api) -> None:
    agent = new_agent(alice)
    execution = alice.post(f"/agents/{agent['agent_id']}/executions", json=QUERY).json()
    a, e = agent["agent_id"], execution["execution_id"]
    for method, path, body in [
        ("GET", f"/agents/{a}", None),
        ("PATCH", f"/agents/{a}", {"name": "mine now"}),
        ("DELETE", f"/agents/{a}", None),
        ("POST", f"/agents/{a}/executions", QUERY),
        ("GET", f"/agents/{a}/executions", None),
        ("GET", f"/executions/{e}", None),
        ("GET", f"/executions/{e}/events", None),
        ("POST", f"/executions/{e}/stop", None),
    ]:
        theirs = bob.request(method, path, json=body)
        missing = bob.request(method, path.replace(a, str(uuid.uuid4())).replace(e, str(uuid.uuid4())), json=body)
        assert_error(theirs, 404, "not_found")
        assert theirs.status_code == missing.status_code
        assert theirs.json()["error"]["code"] == missing.json()["error"]["code"]
    assert a not in [x["agent_id"] for x in bob.get("/agents").json()["agents"]]
    assert alice.get(f"/agents/{a}").json()["name"] == agent["name"]
    assert alice.get(f"/executions/{e}").json()["status"] == "pending"


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-key", "Basic abc", "dv_raw_key_without_scheme"])
def test_routes_need_a_valid_key(rest_stack: Stack, header: str | None) -> None:
    api = Api(rest_stack, None)
    headers = {"Authorization": header} if header else {}
    assert_error(api.get("/agents", headers=headers), 401, "unauthorized")
    assert_error(api.post("/agents", json={"name": "x"}, headers=headers), 401, "unauthorized")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b'{"name": "\\ud800"}', "invalid_json"),
        (b'{"name": "ok", "config": {"top_k": NaN}}', "invalid_json"),
        (b'{"name": "ok", "description": ' + b"[" * 40 + b"]" * 40 + b"}", "too_large"),
        (json.dumps({}).encode(), "validation_error"),
        (json.dumps({"name": ""}).encode(), "validation_error"),
        (json.dumps({"name": "   "}).encode(), "validation_error"),
        (json.dumps({"name": "x" * 101}).encode(), "validation_error"),
        (json.dumps({"name": 5}).encode(), "validation_error"),
        (json.dumps({"name": "ok", "admin": True}).encode(), "validation_error"),
        (json.dumps({"name": "ok", "config": {"top_k": 0}}).encode(), "validation_error"),
        (json.dumps({"name": "ok", "config": {"temperature": "hot"}}).encode(), "validation_error"),
        (json.dumps({"name": "ok", "config": {"collection": "../etc"}}).encode(), "validation_error"),
        (json.dumps({"name": "ok", "config": {"unknown": 1}}).encode(), "validation_error"),
        (json.dumps({"name": "ok", "description": "d" * 70_000}).encode(), "too_large"),
    ],
)
def test_bad_agent_bodies_are_refused_and_leave_nothing(alice: Api, body: bytes, code: str) -> None:
    before = alice.get("/agents", params={"limit": 100}).json()["agents"]
    response = alice.post("/agents", content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 400, code)
    assert alice.get("/agents", params={"limit": 100}).json()["agents"] == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "validation_error"),
        ({"input_data": "What is fNIRS?"}, "validation_error"),
        ({"input_data": {}}, "validation_error"),
        ({"input_data": {"query": ""}}, "validation_error"),
        ({"input_data": {"query": 42}}, "validation_error"),
        ({"input_data": {"query": "q" * 4001}}, "validation_error"),
        ({"input_data": {"query": "ok", "extra": "x" * 33_000}}, "too_large"),
    ],
)
def test_bad_start_bodies_are_refused_and_queue_nothing(
    alice: Api, rest_stack: Stack, sqs: Any, body: Any, code: str
) -> None:
    agent = new_agent(alice)
    path = f"/agents/{agent['agent_id']}/executions"
    assert_error(alice.post(path, json=body), 400, code)
    assert alice.get(path).json()["executions"] == []
    assert not [m for m in queue_messages(sqs, rest_stack) if m["agent_id"] == agent["agent_id"]]


@pytest.mark.parametrize(
    "input_data",
    [
        b'{"query": "hi", "f": 1e400}',
        b'{"query": "hi", "f": -1e999}',
        b'{"query": "hi", "f": Infinity}',
        b'{"query": "hi", "f": [NaN]}',
        b'{"query": "hi", "n": ' + b"9" * 39 + b"}",
        b'{"query": "hi", "n": -' + b"1" + b"0" * 38 + b"}",
        b'{"query": "\\ud800"}',
        b'{"query": "hi", "k": {"\\udfff": 1}}',
    ],
    ids=["1e400", "-1e999", "infinity", "nan-in-list", "39-digits", "-10e38", "lone-surrogate", "surrogate-key"],
)
def test_numbers_and_text_that_are_not_strict_json_are_refused_at_start(
    alice: Api, rest_stack: Stack, sqs: Any, input_data: bytes
) -> None:
    agent = new_agent(alice)
    path = f"/agents/{agent['agent_id']}/executions"
    body = b'{"input_data": ' + input_data + b"}"
    response = alice.post(path, content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_json")
    assert alice.get(path).json()["executions"] == []
    assert not [m for m in queue_messages(sqs, rest_stack) if m["agent_id"] == agent["agent_id"]]


def test_the_largest_storable_integer_and_tiny_doubles_are_accepted(alice: Api) -> None:
    agent = new_agent(alice)
    path = f"/agents/{agent['agent_id']}/executions"
    body = b'{"input_data": {"query": "hi", "n": ' + b"9" * 38 + b', "tiny": 1e-400, "long": 0.' + b"1" * 60 + b"}}"
    response = alice.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    assert response.json()["input_data"]["n"] == int("9" * 38)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/agents", {"name": "ok", "config": {"top_k": 0}}, "config.top_k"),
        ("/agents", {"name": "ok", "config": {"collection": "../etc"}}, "config.collection"),
        ("/agents", {"name": "ok", "config": {"colour": "blue"}}, "config.colour"),
        ("/agents", {"name": ""}, "name"),
        ("/agents", {"name": "ok", "admin": True}, "admin"),
        ("{agent}/executions", {"input_data": {"query": ""}}, "input_data.query"),
        ("{agent}/executions", {"input_data": "text"}, "input_data"),
    ],
)
def test_a_validation_error_names_its_field(alice: Api, path: str, body: Any, field: str) -> None:
    path = path.format(agent=f"/agents/{new_agent(alice)['agent_id']}")
    error = alice.post(path, json=body).json()["error"]
    assert (error["code"], error["field"]) == ("validation_error", field)


def test_malformed_json_names_no_field(alice: Api) -> None:
    error = alice.post("/agents", content=b"{not json", headers={"Content-Type": "application/json"}).json()["error"]
    assert error["code"] == "invalid_json" and "field" not in error


def test_patch_needs_a_field_and_keeps_limits(alice: Api) -> None:
    agent = new_agent(alice)
    path = f"/agents/{agent['agent_id']}"
    assert_error(alice.patch(path, json={}), 400, "validation_error")
    assert_error(alice.patch(path, json={"name": "x" * 101}), 400, "validation_error")
    assert alice.get(path).json() == agent


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nowhere", 404, "not_found"),
        ("GET", "/agents/x/y/z", 404, "not_found"),
        ("PUT", "/agents", 405, "method_not_allowed"),
        ("DELETE", "/executions/00000000-0000-4000-8000-000000000000/stop", 405, "method_not_allowed"),
        ("GET", "/agents/not-a-uuid", 400, "validation_error"),
        ("GET", "/executions/123", 400, "validation_error"),
        ("GET", "/agents?limit=0", 400, "validation_error"),
        ("GET", "/agents?limit=abc", 400, "validation_error"),
        ("GET", "/agents?limit=101", 400, "validation_error"),
        ("GET", "/agents?next_token=garbage!!", 400, "validation_error"),
        ("GET", "/agents?next_token=WzEsMl0", 400, "validation_error"),
        ("GET", "/agents?colour=blue", 400, "validation_error"),
    ],
)
def test_unknown_routes_methods_and_parameters(alice: Api, method: str, path: str, status: int, code: str) -> None:
    assert_error(alice.request(method, path), status, code)
