"""Per-user limits (DESIGN §3): at each limit one more is refused — 429 with Retry-After and a
code naming the limit on REST, an `error` frame on the WebSocket, 429 on the upgrade — and
once something ends or is deleted the next is allowed again; `GET /limits` says where the
caller stands. The request rate per key is the edge's, played by the local gateway. Real
gateway over HTTP and WebSocket, on the moto server; runs stay pending (no poller)."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from chalicelib import limits
from local.stack import Stack
from local.throttle import RateLimit
from tests.conftest import Api, create_key, make_stack
from tests.live import WsClient, wait_until

SMALL = {
    "runs_in_flight": 2,
    "connections": 3,
    "subscribers_per_execution": 2,
    "agents": 2,
    "collections": 2,
    "documents": 3,
    "keys": 3,
}


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


def fill_to_the_limit(api: Api, path: str, name: str, prefix: str) -> list[dict[str, Any]]:
    """Make as many as the limit allows (named prefix-0, prefix-1, …), see one more refused and
    the whole limit used; what was made."""
    made = [api.post(path, json={"name": f"{prefix}-{i}"}) for i in range(SMALL[name] + 1)]
    assert [answer.status_code for answer in made[:-1]] == [201] * SMALL[name]
    assert_limited(made[-1], name)
    assert used(api, name) == SMALL[name]
    return [answer.json() for answer in made[:-1]]


def test_limits_report_every_limit_with_the_callers_use(limited_stack: Stack) -> None:
    _, api = new_user(limited_stack)
    answer = api.get("/limits")
    assert answer.status_code == 200
    reported = answer.json()["limits"]
    assert set(reported) == set(limits.PER_USER)
    assert reported["agents"] == {"limit": 2, "used": 0}
    assert reported["keys"] == {"limit": 3, "used": 1}
    assert reported["documents"] == {"limit": 3, "used": 0}
    assert reported["subscribers_per_execution"]["limit"] == 2
    assert Api(limited_stack, None).get("/limits").status_code == 401
    assert api.get("/limits?agents=1").status_code == 400


@pytest.mark.parametrize(
    ("path", "name", "id_field", "deleted", "again", "listed"),
    [
        ("/agents", "agents", "agent_id", 204, 404, 2),
        # A deleted collection's row stays (deleting) until the indexer has removed its documents.
        ("/collections", "collections", "collection_id", 202, 202, 3),
    ],
)
def test_a_counted_limit_refuses_one_more_until_one_is_deleted(
    limited_stack: Stack, path: str, name: str, id_field: str, deleted: int, again: int, listed: int
) -> None:
    _, api = new_user(limited_stack)
    first = fill_to_the_limit(api, path, name, "made")[0][id_field]
    assert api.delete(f"{path}/{first}").status_code == deleted
    assert api.delete(f"{path}/{first}").status_code == again  # a second delete gives nothing back
    assert used(api, name) == SMALL[name] - 1
    assert api.post(path, json={"name": "made-again"}).status_code == 201
    assert_limited(api.post(path, json={"name": "one-more"}), name)
    # A refused create leaves nothing behind, and a bad body is a 400, not a slot taken.
    assert len(api.get(path).json()[name]) == listed
    _, other = new_user(limited_stack)
    assert other.post(path, json={"name": ""}).status_code == 400
    assert used(other, name) == 0


def test_a_taken_collection_name_holds_no_slot_and_a_deleted_ones_is_free(limited_stack: Stack) -> None:
    _, api = new_user(limited_stack)
    first = api.post("/collections", json={"name": "papers"}).json()["collection_id"]
    assert api.post("/collections", json={"name": "papers"}).status_code == 409
    assert used(api, "collections") == 1
    assert api.delete(f"/collections/{first}").status_code == 202
    assert api.post("/collections", json={"name": "papers"}).status_code == 201
    assert used(api, "collections") == 1


def new_document(api: Api, collection_id: str, tag: str) -> Any:
    body = {"filename": f"{tag}.md", "size": 11, "sha256": hashlib.sha256(tag.encode()).hexdigest()}
    return api.post(f"/collections/{collection_id}/documents", json=body)


def test_documents_limit_counts_across_collections_until_a_document_or_its_collection_goes(
    limited_stack: Stack,
) -> None:
    _, api = new_user(limited_stack)
    first, second = (api.post("/collections", json={"name": n}).json()["collection_id"] for n in ("first", "second"))
    one, two = (new_document(api, first, tag).json()["document"]["document_id"] for tag in ("one", "two"))
    assert new_document(api, second, "three").status_code == 201
    assert_limited(new_document(api, first, "four"), "documents")
    # The same bytes again answer with their document: nothing new is held, so not refused.
    assert new_document(api, first, "one").status_code == 200
    assert api.delete(f"/collections/{first}/documents/{one}").status_code == 202
    assert api.delete(f"/collections/{first}/documents/{one}").status_code == 202  # given back once
    assert used(api, "documents") == 2
    assert new_document(api, first, "four").status_code == 201
    assert_limited(new_document(api, second, "five"), "documents")
    # Deleting a collection gives back its documents not deleted already (two and four).
    assert api.delete(f"/collections/{first}").status_code == 202
    assert used(api, "documents") == 1 and used(api, "collections") == 1
    assert api.delete(f"/collections/{first}/documents/{two}").status_code == 202  # its collection gave it back
    assert used(api, "documents") == 1
    assert new_document(api, first, "six").status_code == 409  # deleting, and nothing taken
    assert [new_document(api, second, tag).status_code for tag in ("six", "seven")] == [201, 201]
    assert_limited(new_document(api, second, "eight"), "documents")


def test_concurrent_document_creates_never_pass_the_limit_together(limited_stack: Stack) -> None:
    _, api = new_user(limited_stack)
    collection_id = api.post("/collections", json={"name": "burst"}).json()["collection_id"]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda i: new_document(api, collection_id, f"burst-{i}"), range(6)))
    assert sorted(answer.status_code for answer in answers) == [201] * 3 + [429] * 3
    for answer in answers:
        if answer.status_code == 429:
            assert_limited(answer, "documents")
    assert used(api, "documents") == 3
    assert len(api.get(f"/collections/{collection_id}/documents").json()["documents"]) == 3


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
