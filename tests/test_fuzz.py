"""Hostile input, fuzzed (DESIGN §3, §4): whatever a client sends, the API answers 2xx with a
valid body or 4xx in the contract's error shape, never a 5xx; the WebSocket answers a bad frame
with an error frame and stays open; and every run the API accepts reaches an end that is not
an internal error. Bounded in examples, against the real local stack."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.stack import Stack
from tests.conftest import Api, create_key
from tests.live import WsClient, wait_until

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
# Text with everything JSON can carry, lone surrogates included (json.dumps escapes them).
TEXT = st.text(st.characters(codec=None, categories=None), max_size=40)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | TEXT
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12
)


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


# Bodies as raw text: JSON (NaN, Infinity and lone surrogates allowed), deep nesting, and junk.
BODIES = (
    VALUES.map(lambda v: json.dumps(v, allow_nan=True))
    | st.fixed_dictionaries({"name": VALUES, "description": VALUES, "config": VALUES}).map(
        lambda v: json.dumps(v, allow_nan=True)
    )
    | st.fixed_dictionaries(
        {"input_data": st.dictionaries(TEXT, VALUES, max_size=3).map(lambda d: {"query": "hi", **d})}
    ).map(lambda v: json.dumps(v, allow_nan=True))
    | st.integers(1, 5000).map(lambda n: '{"input_data": {"query": "hi", "x": ' + deep(n) + "}}")
    | st.binary(max_size=64).map(lambda b: b.decode("latin-1"))
)


def assert_contract(answer: httpx.Response) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text[:300])
    if answer.status_code == 204:
        return
    assert answer.headers["content-type"].startswith("application/json"), answer.text[:300]
    body = answer.json()
    if answer.status_code >= 400:
        assert set(body) == {"error"} and isinstance(body["error"]["code"], str) and body["error"]["message"]


@pytest.fixture(scope="module")
def fuzz_user(rest_stack: Stack) -> dict[str, Any]:
    api = Api(rest_stack, create_key(rest_stack, f"fuzz-{uuid.uuid4().hex[:6]}"))
    agent_id = api.post("/agents", json={"name": "fuzz"}).json()["agent_id"]
    return {"api": api, "agent_id": agent_id}


@FUZZ
@given(body=BODIES, path=st.sampled_from(["/agents", "/agents/{agent}/executions", "/agents/{agent}"]))
def test_any_body_gets_an_answer_in_the_contract(fuzz_user: dict[str, Any], body: str, path: str) -> None:
    method = "PATCH" if path == "/agents/{agent}" else "POST"
    url = path.format(agent=fuzz_user["agent_id"])
    answer = fuzz_user["api"].request(
        method, url, content=body.encode("utf-8", "surrogatepass"), headers={"content-type": "application/json"}
    )
    assert_contract(answer)


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["limit", "next_token", "after", "x"]), TEXT, max_size=3), header=TEXT)
def test_any_query_string_or_header_gets_an_answer_in_the_contract(
    fuzz_user: dict[str, Any], params: dict[str, str], header: str
) -> None:
    clean = {k: v.encode("utf-8", "replace").decode() for k, v in params.items()}
    key = header.encode("ascii", "ignore").decode().strip()
    for url in ("/agents", f"/agents/{fuzz_user['agent_id']}/executions"):
        assert_contract(
            fuzz_user["api"].get(url, params=clean, headers={"Idempotency-Key": key} if key.isprintable() else {})
        )


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    frame=BODIES
    | VALUES.map(lambda v: json.dumps({"action": "subscribe", "execution_id": v, "after": v}, allow_nan=True))
)
def test_any_websocket_frame_gets_an_error_frame_or_an_answer_and_the_socket_stays_open(
    rest_stack: Stack, frame: str
) -> None:
    client = WsClient(rest_stack, create_key(rest_stack, "fuzz-ws"))
    try:
        client.ws.send(frame.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
        client.send({"action": "ping"})
        replies = client.until(lambda f: f.get("type") == "pong", timeout=10)
        assert all(
            r.get("type") in ("error", "pong", "execution_started", "agent_event", "execution_stopped") for r in replies
        ), replies
        assert all(set(r) >= {"code", "message"} for r in replies if r.get("type") == "error")
    finally:
        client.close()


def test_every_accepted_run_ends_without_an_internal_error(live_stack: Stack) -> None:
    api = Api(live_stack, create_key(live_stack, f"fuzz-run-{uuid.uuid4().hex[:6]}"))
    agent_id = api.post("/agents", json={"name": "fuzz-runs", "config": {"max_tokens": 4}}).json()["agent_id"]
    accepted: list[str] = []

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(input_data=st.dictionaries(TEXT, VALUES, max_size=3), query=TEXT.filter(str.strip))
    def start(input_data: dict[str, Any], query: str) -> None:
        body = json.dumps({"input_data": {**input_data, "query": query}}, allow_nan=True)
        answer = api.post(f"/agents/{agent_id}/executions", content=body.encode("utf-8", "surrogatepass"))
        assert_contract(answer)
        if answer.status_code == 202:
            accepted.append(answer.json()["execution_id"])

    start()
    assert accepted, "the fuzzer should have had some runs accepted"
    for execution_id in accepted:
        ended = wait_until(
            lambda e=execution_id: (
                (x := api.get(f"/executions/{e}").json())["status"] in ("completed", "failed", "stopped") and x
            ),
            300,
            f"run {execution_id} ended",
        )
        assert ended["status"] == "completed", ended
