"""Each sample event in events/ runs through its handler in-process, as Lambda would run it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from chalicelib.clock import now_iso
from tests.handlers.conftest import Handlers
from tests.infra.conftest import chalice_config, load_event, seed_sample_run

SAMPLE_USER = "sample-user"
SAMPLE_KEY = load_event("ws_connect.json")["queryStringParameters"]["token"]


def seed_api_key(key: str = SAMPLE_KEY) -> None:
    """An API key row as the keys command writes it: only the key's sha256 is stored."""
    from chalicelib.models import ApiKey

    ApiKey(hashlib.sha256(key.encode()).hexdigest(), user_id=SAMPLE_USER, created_at=now_iso()).save()


def _body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"]) if response.get("body") else None


def test_rest_health_event_answers_ok(h: Handlers) -> None:
    response = h.api(load_event("rest_get_health.json"))
    assert (response["statusCode"], _body(response)) == (200, {"status": "ok"})


def test_rest_post_agents_event_creates_an_agent_for_the_keys_owner(h: Handlers) -> None:
    from chalicelib.models import Agent

    event = load_event("rest_post_agents.json")
    key = event["headers"]["Authorization"].split(" ", 1)[1]
    seed_api_key(key)
    # The agent names the demo user's collection, which the user must own.
    collection = json.loads(event["body"])["config"]["collection"]
    assert h.rest("POST", "/collections", key, {"name": collection}).status_code == 201
    response = h.api(event)
    assert response["statusCode"] == 201, response
    agent = _body(response)
    assert agent["name"] == json.loads(event["body"])["name"]
    assert Agent.get(agent["agent_id"]).user_id == SAMPLE_USER


def test_ws_connect_event_records_the_connection_and_its_management_endpoint(h: Handlers) -> None:
    from chalicelib.models import Connection

    seed_api_key()
    h.rewire(websocket_endpoint=None)  # as deployed: the endpoint comes from the event
    event = load_event("ws_connect.json")
    assert h.invoke("ws_connect", event)["statusCode"] == 200
    context = event["requestContext"]
    connection = Connection.get(context["connectionId"])
    assert connection.user_id == SAMPLE_USER
    # This is how the executor later learns where to post: the stored endpoint.
    assert connection.endpoint == f"https://{context['domainName']}/{context['stage']}"


def test_ws_connect_event_with_an_unknown_token_is_refused(h: Handlers) -> None:
    from chalicelib.models import Connection

    event = load_event("ws_connect.json")
    event["queryStringParameters"] = {"token": "dv_not-a-key"}
    event["requestContext"]["connectionId"] = "refused-connection"
    assert h.invoke("ws_connect", event)["statusCode"] == 401
    assert Connection.count("refused-connection") == 0


def test_ws_ping_message_event_posts_pong_back_to_its_connection(h: Handlers) -> None:
    seed_api_key()
    h.invoke("ws_connect", load_event("ws_connect.json"))
    event = load_event("ws_message_ping.json")
    h.invoke("ws_message", event)
    assert h.connections.take(event["requestContext"]["connectionId"]) == [{"type": "pong"}]


def test_ws_disconnect_event_forgets_the_connection(h: Handlers) -> None:
    from chalicelib.models import Connection

    seed_api_key()
    h.invoke("ws_connect", load_event("ws_connect.json"))
    event = load_event("ws_disconnect.json")
    h.invoke("ws_disconnect", event)
    assert Connection.count(event["requestContext"]["connectionId"]) == 0


def test_sqs_sample_event_is_a_true_record_from_the_dev_runs_queue() -> None:
    (record,) = load_event("sqs_run_execution.json")["Records"]
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    queue = chalice_config()["stages"]["dev"]["environment_variables"]["RUNS_QUEUE_NAME"]
    assert record["eventSourceARN"].endswith(f":{queue}")
    assert set(json.loads(record["body"])) == {"execution_id", "agent_id", "user_id"}


def test_sqs_event_runs_its_execution_to_completion(h: Handlers) -> None:
    message = seed_sample_run()
    output = {"answer": "fNIRS measures blood oxygenation.", "sources": [], "usage": {"completion_tokens": 6}}
    h.runtime.play(
        {"type": "token", "text": "fNIRS measures"},
        {"type": "token", "text": " blood oxygenation."},
        {"type": "result", "output": output},
    )
    result = h.invoke("run_executions", load_event("sqs_run_execution.json"))
    assert not (result or {}).get("batchItemFailures")
    execution = h.execution(message["execution_id"])
    assert (execution.status, execution.output_data) == ("completed", output)
    events = h.events(message["execution_id"])
    assert [e.event_type for e in events] == ["started", "token", "token", "completed"]
    assert "".join(e.content["text"] for e in events if e.event_type == "token") == output["answer"]
