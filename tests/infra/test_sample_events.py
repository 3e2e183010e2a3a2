"""Each sample event in events/ runs through its handler in-process, as Lambda would run it,
and every AWS call the handler makes meanwhile is one the dev policy allows."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.infra.conftest import (
    SAMPLE_USER,
    Lambda,
    chalice_config,
    load_event,
    seed_api_key,
)

SAMPLE_KEY = load_event("ws_connect.json")["queryStringParameters"]["token"]


def _body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"]) if response.get("body") else None


def test_rest_health_event_answers_ok_without_touching_aws(lambda_handlers: Lambda) -> None:
    response = lambda_handlers.invoke("app", load_event("rest_get_health.json"))
    assert response["statusCode"] == 200
    assert _body(response) == {"status": "ok"}
    assert lambda_handlers.calls == []


def test_rest_post_agents_event_creates_an_agent_for_the_keys_owner(lambda_handlers: Lambda) -> None:
    from chalicelib.models import Agent

    event = load_event("rest_post_agents.json")
    seed_api_key(event["headers"]["Authorization"].split(" ", 1)[1])
    response = lambda_handlers.invoke("app", event)
    assert response["statusCode"] == 201, response
    agent = _body(response)
    assert agent["name"] == json.loads(event["body"])["name"]
    assert Agent.get(agent["agent_id"]).user_id == SAMPLE_USER
    assert not lambda_handlers.denied_calls()


def test_ws_connect_event_records_the_connection_and_its_management_endpoint(lambda_handlers: Lambda) -> None:
    from chalicelib.models import Connection

    event = load_event("ws_connect.json")
    seed_api_key(SAMPLE_KEY)
    assert lambda_handlers.invoke("ws_connect", event)["statusCode"] == 200
    context = event["requestContext"]
    connection = Connection.get(context["connectionId"])
    assert connection.user_id == SAMPLE_USER
    # This is how the executor later learns where to post: the stored endpoint.
    assert connection.endpoint == f"https://{context['domainName']}/{context['stage']}"
    assert not lambda_handlers.denied_calls()


def test_ws_connect_event_with_an_unknown_token_is_refused(lambda_handlers: Lambda) -> None:
    from chalicelib.models import Connection

    event = load_event("ws_connect.json")
    event["queryStringParameters"] = {"token": "dv_not-a-key"}
    assert lambda_handlers.invoke("ws_connect", event)["statusCode"] == 401
    assert Connection.count(event["requestContext"]["connectionId"]) == 0


def test_ws_ping_message_event_posts_pong_back_to_its_connection(lambda_handlers: Lambda) -> None:
    seed_api_key(SAMPLE_KEY)
    lambda_handlers.invoke("ws_connect", load_event("ws_connect.json"))
    event = load_event("ws_message_ping.json")
    lambda_handlers.invoke("ws_message", event)
    posts = [c for c in lambda_handlers.calls if c.operation == "PostToConnection"]
    assert [(p.params["ConnectionId"], json.loads(p.params["Data"])) for p in posts] == [
        (event["requestContext"]["connectionId"], {"type": "pong"})
    ]
    context = event["requestContext"]
    assert posts[0].endpoint_url == f"https://{context['domainName']}/{context['stage']}"
    assert not lambda_handlers.denied_calls()


def test_ws_disconnect_event_forgets_the_connection(lambda_handlers: Lambda) -> None:
    from chalicelib.models import Connection

    seed_api_key(SAMPLE_KEY)
    lambda_handlers.invoke("ws_connect", load_event("ws_connect.json"))
    event = load_event("ws_disconnect.json")
    lambda_handlers.invoke("ws_disconnect", event)
    assert Connection.count(event["requestContext"]["connectionId"]) == 0
    assert not lambda_handlers.denied_calls()


def test_sqs_sample_event_is_a_true_record_from_the_dev_runs_queue() -> None:
    (record,) = load_event("sqs_run_execution.json")["Records"]
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    queue = chalice_config()["stages"]["dev"]["environment_variables"]["RUNS_QUEUE_NAME"]
    assert record["eventSourceARN"].endswith(f":{queue}")
    assert set(json.loads(record["body"])) == {"execution_id", "agent_id", "user_id"}


@pytest.fixture
def pending_execution(lambda_handlers: Lambda) -> dict[str, str]:
    """The agent and pending execution the sample SQS message names, as a start leaves them."""
    from chalicelib.clock import now_iso
    from chalicelib.models import Agent, Execution

    message = json.loads(load_event("sqs_run_execution.json")["Records"][0]["body"])
    stamp = now_iso()
    Agent(message["agent_id"], user_id=message["user_id"], name="fNIRS helper", created_at=stamp, updated_at=stamp).save()
    Execution(
        message["execution_id"],
        agent_id=message["agent_id"],
        user_id=message["user_id"],
        status="pending",
        input_data={"query": "What is fNIRS?"},
        created_at=stamp,
    ).save()
    return message


def test_sqs_event_runs_its_execution_to_completion(
    lambda_handlers: Lambda, pending_execution: dict[str, str], scripted_runtime: Any
) -> None:
    from chalicelib.models import Event, Execution

    output = {"answer": "fNIRS measures blood oxygenation.", "sources": [], "usage": {"completion_tokens": 6}}
    scripted_runtime(
        [
            {"type": "progress", "stage": "retrieving", "message": "searching"},
            {"type": "token", "text": "fNIRS measures"},
            {"type": "token", "text": " blood oxygenation."},
            {"type": "result", "output": output},
        ]
    )
    result = lambda_handlers.invoke("run_executions", load_event("sqs_run_execution.json"))
    assert not (result or {}).get("batchItemFailures")
    execution = Execution.get(pending_execution["execution_id"])
    assert (execution.status, execution.output_data) == ("completed", output)
    events = list(Event.query(pending_execution["execution_id"]))
    assert [int(e.seq) for e in events] == list(range(1, len(events) + 1))
    assert (events[0].event_type, events[-1].event_type) == ("started", "completed")
    assert "".join(e.content["text"] for e in events if e.event_type == "token") == output["answer"]
    assert not lambda_handlers.denied_calls()
