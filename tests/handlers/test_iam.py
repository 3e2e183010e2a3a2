"""The stage policies against the AWS calls the handlers really make: every call recorded while
the in-process suite runs (this module's own tour of every handler included) is one each stage's
policy allows on that stage's resources, and the policies grant no action beyond those calls and
what Lambda itself does with the role."""

from __future__ import annotations

import json

import pytest

from local.poller import scheduled_event
from tests.fixtures.aws_calls import AwsCall
from tests.handlers.conftest import Handlers
from tests.infra.conftest import chalice_config
from tests.infra.iam_policy import ACCOUNT, PLATFORM_ACTIONS, allows, granted_actions, load_policy
from tests.live import wait_until

STAGES = sorted(chalice_config()["stages"])
REGION = "us-east-1"
WEBSOCKET_API_ID = "f6g7h8i9j0"


def arn(call: AwsCall, test_stage: str, stage: str) -> str:
    """The ARN IAM checks for the call, had it been made in `stage`."""
    service = call.action.split(":")[0]
    resource = call.resource.replace(f"dynavera-{test_stage}-", f"dynavera-{stage}-")
    if service == "dynamodb":
        return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{resource}"
    if service == "sqs":
        return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{resource}"
    if service == "s3":
        return f"arn:aws:s3:::{resource}"
    api_stage = chalice_config()["stages"][stage]["api_gateway_stage"]
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{WEBSOCKET_API_ID}/{api_stage}/{resource}/Xk7pSdS3IAMCJcw="


@pytest.fixture(scope="module")
def toured(handlers: Handlers) -> set[AwsCall]:
    """Every handler once, each path that reaches AWS differently: REST, WebSocket, the executor
    (a run, a deferred run), the sweepers, a gone connection, collections and documents, keys and
    limits."""
    h = handlers
    _, key = h.user()
    collection_id = tour_collections(h, key)
    agent_id = h.agent(key, max_tokens=32, collection="toured")
    h.rest("GET", "/agents?limit=1", key)
    h.rest("PATCH", f"/agents/{agent_id}", key, {"description": "toured"})
    h.start(key, agent_id, **{"Idempotency-Key": "tour"})
    h.rest("GET", f"/agents/{agent_id}/executions", key)
    connection_id = h.connect(key)
    h.send(connection_id, {"action": "ping"})
    (started,) = h.send(connection_id, {"action": "start_agent", "agent_id": agent_id, "input_data": {"query": "q"}})
    execution_id = started["execution_id"]
    h.send(connection_id, {"action": "subscribe", "execution_id": execution_id, "after": 0})
    h.runtime.play({"type": "token", "text": "Hi"}, {"type": "result", "output": {"answer": "Hi"}})
    while h.deliver():  # the run with the key's execution before it
        pass
    h.send(connection_id, {"action": "unsubscribe", "execution_id": execution_id})
    h.rest("GET", f"/executions/{execution_id}/events", key)
    h.rest("POST", f"/executions/{h.start(key, agent_id)}/stop", key)
    h.send(connection_id, {"action": "stop_agent", "execution_id": execution_id})
    h.rewire(execution_deadline_seconds=1, pending_deadline_seconds=1, run_attempts=5, retry_base_seconds=1)
    h.runtime.play(status=429)
    h.start(key, agent_id)
    wait_until(h.deliver, 10, "a deferred run")
    wait_until(lambda: h.sweep()["swept"], 10, "a swept run")
    h.connections.gone.add(connection_id)
    h.send(connection_id, {"action": "ping"})
    h.ws("$disconnect", connection_id)
    h.rest("DELETE", f"/collections/{collection_id}", key)  # in use
    h.rest("DELETE", f"/agents/{agent_id}", key)
    h.rest("GET", "/limits", key)
    second = h.rest("POST", "/keys", key, {"name": "toured"}).json_body
    doomed = h.connect(second["key"])
    h.rest("GET", "/keys", key)
    h.rest("DELETE", f"/keys/{second['key_id']}", key)  # and its connection closed
    h.send(doomed, {"action": "ping"})
    h.rest("DELETE", f"/collections/{collection_id}", key)
    h.invoke("sweep_stuck_documents", scheduled_event())
    return h.recorder.calls


def tour_collections(h: Handlers, key: str) -> str:
    """The collection and document routes, each once; the collection "toured" stays."""
    collection_id = h.rest("POST", "/collections", key, {"name": "toured"}).json_body["collection_id"]
    h.rest("GET", "/collections?limit=1", key)
    h.rest("GET", f"/collections/{collection_id}", key)
    documents = f"/collections/{collection_id}/documents"
    body = {"filename": "a.md", "size": 3, "sha256": "ab" * 32}
    document_id = h.rest("POST", documents, key, body).json_body["document"]["document_id"]
    h.rest("POST", documents, key, body)  # the same bytes
    h.rest("GET", f"{documents}?status=queued", key)
    h.rest("GET", f"{documents}/{document_id}", key)
    h.rest("DELETE", f"{documents}/{document_id}", key)
    return collection_id


def test_the_tour_reaches_every_box_of_the_design(toured: set[AwsCall]) -> None:
    actions = {call.action for call in toured}
    assert {"dynamodb:PutItem", "dynamodb:Query", "sqs:SendMessage", "execute-api:ManageConnections"} <= actions


def refused(stage: str, handlers: Handlers) -> list[str]:
    """The recorded calls the stage's policy would refuse, as "action on ARN"."""
    policy = load_policy(stage)
    arns = {call: arn(call, handlers.settings.stage, stage) for call in handlers.recorder.calls}
    return sorted(f"{call.action} on {arns[call]}" for call in arns if not allows(policy, call.action, arns[call]))


@pytest.mark.parametrize("stage", STAGES)
def test_stage_policy_allows_every_call_the_handlers_made(stage: str, toured: set[AwsCall], handlers: Handlers) -> None:
    missing = refused(stage, handlers)
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("stage", STAGES)
def test_stage_policy_grants_no_action_beyond_the_calls_and_the_platform(stage: str, toured: set[AwsCall]) -> None:
    used = {call.action for call in toured} | set(PLATFORM_ACTIONS)
    granted = granted_actions(load_policy(stage))
    assert granted <= used, json.dumps(sorted(granted - used))
    assert not any("*" in action for action in granted)
