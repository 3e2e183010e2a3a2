"""API keys' lifecycle (DESIGN §3): created with a name and shown once, listed by name and
prefix, revoked everywhere at once — refused on REST within seconds (chalicelib.auth keeps a
key only briefly) and every WebSocket connection opened with it closed.
"""

from __future__ import annotations

import secrets
from typing import Any

from chalicelib import auth, delivery, usage, validation
from chalicelib.clock import new_id, now_iso
from chalicelib.errors import Conflict, Invalid, NotFound
from chalicelib.models import ApiKey, Connection, conditional
from chalicelib.telemetry import logger

# What a key shows of itself: "dv_" and six characters, enough to tell one's keys apart.
PREFIX_CHARS = 9


def create_api_key(user_id: str, name: str = "") -> tuple[str, ApiKey]:
    """A new key for the user: the secret (returned once, never stored) and its row."""
    if not user_id or len(user_id) > 128:
        raise ValueError("A user id is 1-128 characters.")
    key = auth.KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        auth.digest(key),
        user_id=user_id,
        created_at=now_iso(),
        key_id=new_id(),
        name=name,
        prefix=key[:PREFIX_CHARS],
    )
    with conditional():
        row.save(condition=ApiKey.key_hash.does_not_exist())
    return key, row


def create(user_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /keys: a named key of the caller's own; the answer is the only time the secret is shown."""
    unknown = sorted(set(body) - {"name"})
    if unknown:
        raise Invalid(f"Unknown field(s) in the key: {', '.join(unknown)}.")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > validation.MAX_NAME_CHARS:
        raise Invalid(f"'name' must be a string of 1-{validation.MAX_NAME_CHARS} characters.", field="name")
    usage.check_key(user_id)
    key, row = create_api_key(user_id, name.strip())
    return {**row.to_api(), "key": key}


def list_keys(user_id: str | None) -> list[ApiKey]:
    """The user's keys, oldest first; with no user (the operator's CLI), every key of the stage.
    A key made before keys had ids gets one here, once."""
    rows = list(ApiKey.by_user.query(user_id) if user_id is not None else ApiKey.scan())
    for row in rows:
        if row.key_id is None:
            with conditional():
                row.update(actions=[ApiKey.key_id.set(new_id())], condition=ApiKey.key_hash.exists())
    return rows


def find(key_id: str, user_id: str | None = None) -> ApiKey:
    """A key by its id: among the user's own, or (the operator's CLI, user_id None) any."""
    key_id = validation.uuid_param(key_id, "key_id")
    row = next((r for r in list_keys(user_id) if r.key_id == key_id), None)
    if row is None:
        raise NotFound(f"Key {key_id} not found.")
    return row


def revoke(row: ApiKey) -> int:
    """Delete the key and close every WebSocket connection opened with it; how many were closed."""
    try:
        with conditional():
            row.delete(condition=ApiKey.key_hash.exists())
    except Conflict:
        pass  # revoked already: its connections are closed all the same
    auth.forget(row.key_hash)
    closed = 0
    for connection in Connection.by_user.query(row.user_id, filter_condition=Connection.key_hash == row.key_hash):
        delivery.close_connection(connection.endpoint, connection.connection_id)
        closed += 1
    logger.info("API key revoked", extra={"key_id": row.key_id, "connections_closed": closed})
    return closed


def rotate(row: ApiKey) -> tuple[str, ApiKey]:
    """A new key for the same user and name, then the old one revoked."""
    key, new_row = create_api_key(row.user_id, row.name or "")
    revoke(row)
    return key, new_row
