"""The WebSocket protocol (DESIGN §4): connect with a token, then actions in, frames out.

Every reply goes through the same @connections API that carries live events, so a handler
behaves the same behind API Gateway and behind the local gateway.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist

import contract
from chalicelib import auth, delivery, runs, usage, validation
from chalicelib.clock import now, now_iso
from chalicelib.delivery import close_connection, forget_connection, post_to_connection
from chalicelib.errors import DynaveraError, Invalid, Unauthorized, error_frame
from chalicelib.models import Connection, Execution, Subscription
from chalicelib.telemetry import logger

# API Gateway closes a connection after 2 hours; rows outlive it a little, then expire.
CONNECTION_TTL = timedelta(hours=2, minutes=10)
MAX_FRAME_BYTES = 32 * 1024


# The @connections endpoint when it is not the event's own (the local gateway), from the wiring step.
_endpoint: str | None = None


def configure(endpoint: str | None) -> None:
    global _endpoint
    _endpoint = endpoint


def management_endpoint(domain_name: str, stage: str) -> str:
    return _endpoint or f"https://{domain_name}/{stage}"


def connect(connection_id: str, token: str | None, domain_name: str, stage: str) -> str:
    """Check the token and the user's connections limit, and record the connection with its
    key; Unauthorized or LimitReached refuses the upgrade."""
    user_id = auth.user_for_key(token)
    usage.check_connection(user_id)
    Connection(
        connection_id,
        user_id=user_id,
        key_hash=auth.digest(token or ""),
        endpoint=management_endpoint(domain_name, stage),
        connected_at=now_iso(),
        expires_at=now() + CONNECTION_TTL,
    ).save()
    return user_id


def disconnect(connection_id: str) -> None:
    forget_connection(connection_id)


def handle_frame(connection_id: str, body: str | None) -> None:
    """Run one client frame; a bad one is answered with an error frame, the connection stays."""
    try:
        connection = Connection.get(connection_id)
    except DoesNotExist:
        return
    if not _key_holds(connection):
        return
    request_id = None
    try:
        frame = validation.json_object(body, MAX_FRAME_BYTES, "A frame")
        request_id = frame.get("request_id")
        if request_id is not None and not isinstance(request_id, str | int):
            request_id = None
            raise Invalid("'request_id' must be a string or an integer.", field="request_id")
        action = frame.get("action")
        handler = _ACTIONS.get(action) if isinstance(action, str) else None
        if handler is None:
            known = ", ".join(sorted(_ACTIONS))
            raise Invalid(f"Unknown action {action!r}; use one of {known}.", contract.UNKNOWN_ACTION, "action")
        handler(connection, frame)
    except DynaveraError as err:
        post_to_connection(connection.endpoint, connection_id, error_frame(err, request_id))
    except Exception:  # noqa: BLE001 - logged with its traceback just below
        # The boundary of a frame: the client hears that it failed, the connection stays open.
        logger.exception("frame failed", extra={"connection_id": connection_id})
        post_to_connection(
            connection.endpoint, connection_id, error_frame(DynaveraError("An internal error occurred."), request_id)
        )


def _key_holds(connection: Connection) -> bool:
    """Every frame re-checks the key the connection opened with (remembered a few seconds):
    a frame that raced the key's revocation is refused, and the connection closed."""
    if connection.key_hash is None:
        return True  # opened before connections recorded their key; it expires with its TTL
    try:
        auth.user_for_digest(connection.key_hash)
    except Unauthorized as err:
        post_to_connection(connection.endpoint, connection.connection_id, error_frame(err))
        close_connection(connection.endpoint, connection.connection_id)
        return False
    return True


def _ping(connection: Connection, frame: dict[str, Any]) -> None:
    post_to_connection(connection.endpoint, connection.connection_id, {"type": "pong"})


def _start_agent(connection: Connection, frame: dict[str, Any]) -> None:
    if "agent_id" not in frame:
        raise Invalid("'agent_id' is required.", field="agent_id")
    # The frame's input_data and config are a start request's body, checked exactly as REST's.
    body = {key: frame[key] for key in ("input_data", "config") if key in frame}
    execution = runs.start(connection.user_id, str(frame["agent_id"]), body, idempotency_key=None)
    started: dict[str, Any] = {
        "type": "execution_started",
        "execution_id": execution.execution_id,
        "agent_id": execution.agent_id,
        "status": execution.status,
    }
    if frame.get("request_id") is not None:
        started["request_id"] = frame["request_id"]
    post_to_connection(connection.endpoint, connection.connection_id, started)
    follow(connection, execution, 0)


def _subscribe(connection: Connection, frame: dict[str, Any]) -> None:
    after = frame.get("after", 0)
    if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= validation.MAX_AFTER:
        raise Invalid(f"'after' must be an integer seq from 0 to {validation.MAX_AFTER}.", field="after")
    follow(connection, runs.get(connection.user_id, _execution_id(frame)), after)


def follow(connection: Connection, execution: Execution, after: int) -> None:
    """Follow an execution from `after`: a live one's sender picks the subscription up (see
    delivery); a terminal one has no sender left, so its log is replayed here."""
    usage.check_subscriber(execution.execution_id, connection.connection_id)
    if not delivery.subscribe(execution.execution_id, connection, after):
        delivery.replay_terminal(execution.execution_id, connection, after)


def _unsubscribe(connection: Connection, frame: dict[str, Any]) -> None:
    execution = runs.get(connection.user_id, _execution_id(frame))
    Subscription(execution.execution_id, connection.connection_id).delete()


def _stop_agent(connection: Connection, frame: dict[str, Any]) -> None:
    runs.stop(connection.user_id, _execution_id(frame))


def _execution_id(frame: dict[str, Any]) -> str:
    if "execution_id" not in frame:
        raise Invalid("'execution_id' is required.", field="execution_id")
    return validation.uuid_param(frame["execution_id"], "execution_id")


_ACTIONS = {
    "ping": _ping,
    "start_agent": _start_agent,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "stop_agent": _stop_agent,
}
