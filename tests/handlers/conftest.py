"""The Chalice handlers driven in-process through chalice.test.Client, on their own stage of the
moto server, with a scripted runtime and a recording @connections API: REST, WebSocket, the SQS
executor (fed by the local poller, as the event source mapping feeds it) and the sweeper."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from chalice import Chalice
from chalice.test import Client

from chalicelib.settings import Settings
from chalicelib.wiring import wire
from local import endpoint
from local.lambda_runtime import LambdaContext
from local.poller import Poller, scheduled_event
from local.stack import Stack
from tests.fixtures.aws_calls import Recorder
from tests.fixtures.scripted import Connections, ScriptedRuntime


@dataclass
class Handlers:
    app: Chalice
    client: Client
    settings: Settings
    runtime: ScriptedRuntime
    connections: Connections
    poller: Poller
    recorder: Recorder

    def rewire(self, **changes: Any) -> None:
        """Settings of this stage with `changes`, wired for the rest of the test."""
        wire(replace(self.settings, **changes))

    def user(self) -> tuple[str, str]:
        """A new user and its API key."""
        from chalicelib.keys import create_api_key

        user_id = f"user-{uuid.uuid4().hex[:8]}"
        return user_id, create_api_key(user_id)[0]

    def rest(self, method: str, path: str, key: str | None, body: Any = None, **headers: str) -> Any:
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
        with self.recorder.handler():
            return self.client.http.request(method, path, headers=headers, body=raw)

    def agent(self, key: str, **config: Any) -> str:
        response = self.rest("POST", "/agents", key, {"name": "helper", "config": config})
        assert response.status_code == 201, response.body
        return response.json_body["agent_id"]

    def start(self, key: str, agent_id: str, query: str = "What is fNIRS?", **headers: str) -> str:
        response = self.rest("POST", f"/agents/{agent_id}/executions", key, {"input_data": {"query": query}}, **headers)
        assert response.status_code == 202, response.body
        return response.json_body["execution_id"]

    def ws(self, route: str, connection_id: str, body: str | None = None, token: str | None = None) -> Any:
        event: dict[str, Any] = {
            "requestContext": {
                "routeKey": route,
                "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE"),
                "connectionId": connection_id,
                "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
                "stage": "api",
                "apiId": "abc123",
                "requestId": str(uuid.uuid4()),
            },
            "isBase64Encoded": False,
        }
        if token is not None:
            event["queryStringParameters"] = {"token": token}
        if body is not None:
            event["body"] = body
        name = {"$connect": "ws_connect", "$disconnect": "ws_disconnect"}.get(route, "ws_message")
        return self.invoke(name, event)

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        """Run one Lambda handler on `event`, its AWS calls recorded."""
        with self.recorder.handler():
            return self.client.lambda_.invoke(name, event).payload

    def api(self, event: dict[str, Any]) -> Any:
        """Run the REST API's Lambda on an API Gateway proxy event."""
        with self.recorder.handler():
            return self.app(event, LambdaContext(function_name="dynavera-dev"))

    def connect(self, key: str) -> str:
        connection_id = uuid.uuid4().hex[:16]
        assert self.ws("$connect", connection_id, token=key)["statusCode"] == 200
        return connection_id

    def send(self, connection_id: str, frame: dict[str, Any] | str) -> list[dict[str, Any]]:
        """Send one frame; the frames the connection received meanwhile."""
        self.ws("$default", connection_id, frame if isinstance(frame, str) else json.dumps(frame))
        return self.connections.take(connection_id)

    def deliver(self) -> int:
        """One poll of the runs queue into the executor, as the event source mapping does it."""
        return self.poller.poll_once(wait_seconds=0)

    def sweep(self) -> Any:
        return self.invoke("sweep_stuck_executions", scheduled_event())

    def execution(self, execution_id: str) -> Any:
        from chalicelib.models import Execution

        return Execution.get(execution_id, consistent_read=True)

    def events(self, execution_id: str) -> list[Any]:
        from chalicelib.events import list_events

        return list_events(execution_id, 0, 1000)[0]


@pytest.fixture(scope="session")
def handlers(aws_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Handlers]:
    import app as app_module

    runtime, connections, recorder = ScriptedRuntime(), Connections(), Recorder()
    port = int(connections.url.rsplit(":", 1)[1])
    # The recording server plays the gateway's @connections API.
    stack = Stack(
        stage=f"inproc{uuid.uuid4().hex[:6]}", management_port=port, aws_url=aws_endpoint, runtime_url=runtime.url
    )
    stack.start_aws()
    settings = stack.settings
    wire(settings)
    # A project without .chalice/: the client then adds no stage variables to os.environ while it
    # invokes (it swaps os.environ for a copy, which concurrent invocations could leave behind).
    client = Client(app_module.app, project_dir=str(tmp_path_factory.mktemp("chalice-project")))

    sqs = endpoint.client("sqs", aws_endpoint)
    poller = Poller(None, settings.runs_queue_name, 1, "dynavera-run_executions", sqs=sqs)
    handlers = Handlers(app_module.app, client, settings, runtime, connections, poller, recorder)
    poller.handler = lambda event, context: handlers.invoke("run_executions", event)
    yield handlers
    runtime.close()
    connections.close()
    recorder.close()


@pytest.fixture
def h(handlers: Handlers) -> Iterator[Handlers]:
    """The handlers with the stage's own settings bound again after each test, the queue empty."""
    drain(handlers)
    yield handlers
    wire(handlers.settings)
    handlers.runtime.released.set()
    drain(handlers)


def drain(handlers: Handlers) -> None:
    sqs, queue_url = handlers.poller.sqs, handlers.poller.queue_url
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
