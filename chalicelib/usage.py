"""What each user holds against the per-user limits (chalicelib.limits), and the refusals.

Runs in flight, agents, collections and documents are counted in the usage table: taking one
is a conditional ADD that fails at the limit, so a burst of concurrent requests can never
pass it together; giving one back never goes below zero. Connections and subscribers are
rows with a TTL of their own, so they are counted where they live: a connection that expired
without its $disconnect stops counting by itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib import limits
from chalicelib.clock import now
from chalicelib.errors import Conflict, LimitReached
from chalicelib.models import ApiKey, Connection, Subscription, Usage, conditional

COUNTED = ("runs_in_flight", "agents", "collections", "documents")
# The stage's limits, from the wiring step.
_limits = limits.Limits()


def configure(stage_limits: limits.Limits) -> None:
    global _limits
    _limits = stage_limits


def current_limits() -> limits.Limits:
    return _limits


_WHAT = {
    "runs_in_flight": "runs pending or running at once",
    "connections": "WebSocket connections open at once",
    "subscribers_per_execution": "connections following one execution",
    "agents": "agents",
    "collections": "collections",
    "documents": "documents",
    "keys": "API keys",
}


def refusal(name: str) -> LimitReached:
    limit = _limits.of(name)
    after = "wait for one to end" if name == "runs_in_flight" else "end or delete one first"
    return LimitReached(
        f"You have reached your limit of {limit} {_WHAT[name]}; {after}, or see GET /limits.",
        limits.code(name),
        limits.RETRY_AFTER_SECONDS[name],
    )


def acquire(user_id: str, name: str, amount: int = 1) -> None:
    """Take `amount` of a counted limit, or raise LimitReached (429) and take nothing."""
    attribute = getattr(Usage, name)
    ceiling = _limits.of(name) - amount
    if ceiling < 0:
        raise refusal(name)
    with conditional(refusal(name)):
        Usage(user_id).update(
            actions=[attribute.add(amount)], condition=attribute.does_not_exist() | (attribute <= ceiling)
        )


@contextmanager
def held(user_id: str, name: str) -> Iterator[None]:
    """One of a counted limit taken around the write that makes the thing it counts, and given
    back when that write fails."""
    acquire(user_id, name)
    try:
        yield
    except Exception:
        release(user_id, name)
        raise


def release(user_id: str, name: str, amount: int = 1) -> None:
    """Give back what `acquire` took; a count never goes below zero (something made before
    its limit was counted gives back nothing)."""
    attribute = getattr(Usage, name)
    try:
        with conditional():
            Usage(user_id).update(actions=[attribute.add(-amount)], condition=attribute >= amount)
    except Conflict:
        pass


def connections_open(user_id: str) -> int:
    return Connection.by_user.count(user_id, filter_condition=Connection.expires_at > now())


def keys_held(user_id: str) -> int:
    return ApiKey.by_user.count(user_id)


def check_key(user_id: str) -> None:
    """Refuse one more API key at the limit: the request rate is per key."""
    if keys_held(user_id) >= _limits.keys:
        raise refusal("keys")


def check_connection(user_id: str) -> None:
    """Refuse one more WebSocket connection at the limit."""
    if connections_open(user_id) >= _limits.connections:
        raise refusal("connections")


def check_subscriber(execution_id: str, connection_id: str) -> None:
    """Refuse one more connection following this execution at the limit; a connection that
    follows it already may subscribe again (a resume)."""
    rows = [row.connection_id for row in Subscription.query(execution_id, consistent_read=True)]
    if connection_id not in rows and len(rows) >= _limits.subscribers_per_execution:
        raise refusal("subscribers_per_execution")


def report(user_id: str) -> dict[str, dict[str, Any]]:
    """GET /limits: each per-user limit and what the caller holds against it. Subscribers are
    counted per execution, so there is no one number to report for them."""
    try:
        held = Usage.get(user_id, consistent_read=True)
    except DoesNotExist:
        held = Usage(user_id)
    used: dict[str, int | None] = {name: int(getattr(held, name) or 0) for name in COUNTED}
    used["connections"] = connections_open(user_id)
    used["keys"] = keys_held(user_id)
    used["subscribers_per_execution"] = None
    return {name: {"limit": _limits.of(name), "used": used[name]} for name in limits.PER_USER}
