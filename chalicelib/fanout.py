"""Fan-out: an execution's events, shaped as WebSocket frames, posted to every subscribed connection.

Frames go through boto3's apigatewaymanagementapi client exactly as in AWS; a connection that
API Gateway reports gone is deleted on the spot, with its subscriptions.
"""

from __future__ import annotations

import json
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib.aws import connections_api
from chalicelib.models import Connection, Event, Subscription
from chalicelib.telemetry import count, logger

# API Gateway refuses frames over 32 KB; source excerpts in the completion frame are cut to fit.
EXCERPT_CHARS = 400
TERMINAL_FRAMES = {
    "completed": "execution_completed",
    "error": "execution_error",
    "stopped": "execution_stopped",
}


def frame_for(event: Event) -> dict[str, Any]:
    frame: dict[str, Any] = {"execution_id": event.execution_id, "seq": int(event.seq)}
    kind = TERMINAL_FRAMES.get(event.event_type)
    if kind is None:
        frame.update(
            type="agent_event",
            event_type=event.event_type,
            content=event.content,
            timestamp=event.timestamp,
        )
    elif kind == "execution_completed":
        frame.update(type=kind, output_data=_bounded_output(event.content))
    elif kind == "execution_error":
        frame.update(type=kind, error=event.content.get("message", "The execution failed."))
    else:
        frame.update(type=kind)
    return frame


def _bounded_output(output: dict[str, Any]) -> dict[str, Any]:
    sources = [
        {**source, "text": str(source.get("text", ""))[:EXCERPT_CHARS]}
        for source in output.get("sources", [])
    ]
    return {**output, "sources": sources}


def forget_connection(connection_id: str) -> None:
    for sub in Subscription.by_connection.query(connection_id):
        Subscription(sub.execution_id, connection_id).delete()
    try:
        Connection.get(connection_id).delete()
    except DoesNotExist:
        pass


def post_to_connection(endpoint: str, connection_id: str, frame: dict[str, Any]) -> bool:
    """Post one frame; False (and the connection forgotten) when API Gateway says it is gone."""
    client = connections_api(endpoint)
    data = json.dumps(frame, separators=(",", ":")).encode()
    try:
        client.post_to_connection(ConnectionId=connection_id, Data=data)
    except client.exceptions.GoneException:
        logger.info("connection gone", extra={"connection_id": connection_id})
        count("GoneConnections")
        forget_connection(connection_id)
        return False
    count("EventsSent")
    return True


def publish(event: Event) -> None:
    """Post an event's frame to every connection subscribed to its execution."""
    frame = frame_for(event)
    for sub in Subscription.query(event.execution_id):
        post_to_connection(sub.endpoint, sub.connection_id, frame)
