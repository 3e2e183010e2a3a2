"""The local gateway plays API Gateway faithfully where clients could abuse it: binary frames
get an error frame and the socket stays open, and the @connections API is not reachable where
clients connect (DESIGN §4)."""

from __future__ import annotations

import uuid

import boto3
import httpx

from local.stack import Stack
from tests.conftest import create_key
from tests.live import WsClient, wait_until


def connection_ids(stack: Stack, user_id: str) -> list[str]:
    table = boto3.resource("dynamodb", endpoint_url=stack.aws_url, region_name="us-east-1").Table(
        f"dynavera-{stack.stage}-connections"
    )
    return [item["connection_id"] for item in table.scan()["Items"] if item["user_id"] == user_id]


def test_a_binary_frame_gets_an_error_frame_and_the_socket_stays_open(rest_stack: Stack) -> None:
    client = WsClient(rest_stack, create_key(rest_stack, f"bin-{uuid.uuid4().hex[:6]}"))
    try:
        client.ws.send(b"\x00\xff binary")
        reply = client.next_frame(timeout=10)
        assert reply["type"] == "error" and reply["code"] == "invalid_json"
        client.send({"action": "ping"})
        assert client.next_frame(timeout=10) == {"type": "pong"}
    finally:
        client.close()


def test_clients_cannot_reach_the_connections_api(rest_stack: Stack) -> None:
    victim_user = f"victim-{uuid.uuid4().hex[:6]}"
    victim = WsClient(rest_stack, create_key(rest_stack, victim_user))
    try:
        (connection_id,) = wait_until(
            lambda: connection_ids(rest_stack, victim_user), 10, "the victim's connection row"
        )
        path = f"{rest_stack.api_url}/{rest_stack.stage}/@connections/{connection_id}"
        forged = {"type": "execution_completed", "execution_id": str(uuid.uuid4()), "seq": 1, "output_data": {}}
        for method in ("POST", "GET", "DELETE"):
            answer = httpx.request(method, path, json=forged if method == "POST" else None)
            assert answer.status_code in (401, 403, 404, 405), (method, answer.status_code)
            assert "error" in answer.json()
        victim.send({"action": "ping"})
        assert victim.next_frame(timeout=10) == {"type": "pong"}  # nothing forged arrived first
    finally:
        victim.close()
