"""Executions: start (write pending, then queue the run), read, list, stop; the state machine.

Every status change is a conditional update against TRANSITIONS, so a duplicate SQS delivery,
a stop racing a completion, or two writers can never move an execution twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from pynamodb.exceptions import DoesNotExist

from chalicelib import agents, aws, usage, validation
from chalicelib.clock import new_id, now, now_iso
from chalicelib.errors import Conflict, LimitReached, NotFound, Unavailable
from chalicelib.events import list_events
from chalicelib.models import Event, Execution, IdempotencyRecord, conditional
from chalicelib.pagination import query_page
from chalicelib.telemetry import count

TRANSITIONS: dict[str, set[str]] = {
    "pending": {"running", "stopped", "failed"},
    "running": {"completed", "failed", "stopped"},
}
TERMINAL = {"completed", "failed", "stopped"}
# The event that ends a run, by the status it ends in.
TERMINAL_EVENTS = {"completed": "completed", "failed": "error", "stopped": "stopped"}
# What a run's end records, by its status: the terminal event's content and the execution's
# fields, from the one particular the caller gives (the output, the error message, the reason).
OUTCOMES: dict[str, Callable[[Any], tuple[dict[str, Any], list[Any]]]] = {
    "completed": lambda output: (output, [Execution.output_data.set(output)]),
    "failed": lambda message: ({"message": message}, [Execution.error_message.set(message)]),
    "stopped": lambda reason: ({"reason": reason}, []),
}
IDEMPOTENCY_WINDOW = timedelta(hours=24)

# Writes a run's terminal event and sends it (execution_id, event_type, content): the delivery
# module's, handed in by the wiring step, so the state machine knows nothing of subscribers.
Announce = Callable[[str, str, dict[str, Any]], None]
_announce: Announce | None = None


def configure(announce: Announce) -> None:
    global _announce
    _announce = announce


def transition(execution: Execution, to: str, *actions: Any) -> bool:
    """Move the execution to `to` if its stored status allows it; False if another writer won."""
    sources = [status for status, targets in TRANSITIONS.items() if to in targets]
    stamp = now_iso()
    updates = [Execution.status.set(to), *actions]
    if to == "running":
        updates.append(Execution.started_at.set(stamp))
    if to in TERMINAL:
        updates.append(Execution.completed_at.set(stamp))
    try:
        with conditional():
            execution.update(actions=updates, condition=Execution.status.is_in(*sources))
    except Conflict:
        execution.refresh(consistent_read=True)
        return False
    if to in TERMINAL:
        # Only the writer that ended the run gets here, so the run's slot is given back once.
        usage.release(execution.user_id, "runs_in_flight")
    return True


def start(
    user_id: str, agent_id: str, body: dict[str, Any], idempotency_key: str | None
) -> Execution:
    agent = agents.get(user_id, agent_id)
    input_data, config = validation.start_body(body, agent.config)
    validation.fits_context(input_data["query"], config)
    execution_id = new_id()
    # The slot is taken before the key is claimed: a refused start must leave no key behind
    # that names an execution which will never exist.
    try:
        usage.acquire(user_id, "runs_in_flight")
    except LimitReached:
        # A retry of a start that went through answers as the first one did, limit or not.
        earlier = _started_with_key(user_id, idempotency_key, agent.agent_id) if idempotency_key else None
        if earlier is None:
            raise
        return earlier
    try:
        earlier = (
            _claim_idempotency_key(user_id, idempotency_key, agent.agent_id, execution_id)
            if idempotency_key is not None
            else None
        )
        if earlier is not None:
            usage.release(user_id, "runs_in_flight")
            return earlier
        execution = Execution(
            execution_id,
            agent_id=agent.agent_id,
            user_id=user_id,
            status="pending",
            input_data=input_data,
            config=config,
            query_folded=input_data["query"].casefold(),
            created_at=now_iso(),
        )
        with conditional():
            execution.save(condition=Execution.execution_id.does_not_exist())
    except Exception:
        usage.release(user_id, "runs_in_flight")
        raise
    count("ExecutionsCreated")
    message = {"execution_id": execution_id, "agent_id": agent.agent_id, "user_id": user_id}
    try:
        aws.sqs().send_message(
            QueueUrl=aws.runs_queue_url(), MessageBody=json.dumps(message), MessageGroupId=tenant(user_id)
        )
    except Exception as err:
        # The execution exists before its message does; one that cannot be queued must not
        # wait forever as pending, and its key must be free for the client's retry.
        end(execution, "failed", "The run could not be queued.")
        if idempotency_key is not None:
            IdempotencyRecord(idempotency_id(user_id, idempotency_key)).delete()
        raise Unavailable("The run could not be queued; try again.") from err
    return execution


def tenant(user_id: str) -> str:
    """The run message's MessageGroupId: its user, as a fair queue's tenant. Hashed, since a
    group id is at most 128 characters of ASCII punctuation and alphanumerics and a user id
    need not be."""
    return hashlib.sha256(user_id.encode()).hexdigest()


def idempotency_id(user_id: str, key: str) -> str:
    """The record's id. The user id is percent-encoded, so no user id ends where another's key
    begins (a '#' in it is encoded); ids of plain characters keep the form they always had."""
    return f"{quote(user_id, safe='')}#{key}"


def _claim_idempotency_key(
    user_id: str, key: str, agent_id: str, execution_id: str
) -> Execution | None:
    """Record the key for this new execution, or return the execution it already started."""
    record_id = idempotency_id(user_id, key)
    record = IdempotencyRecord(
        record_id,
        execution_id=execution_id,
        agent_id=agent_id,
        expires_at=now() + IDEMPOTENCY_WINDOW,
    )
    try:
        with conditional():
            record.save(
                condition=IdempotencyRecord.idempotency_id.does_not_exist() | (IdempotencyRecord.expires_at < now())
            )
        return None
    except Conflict:
        pass  # the key is taken: the request it started answers
    return _started_with_key(user_id, key, agent_id)


def _started_with_key(user_id: str, key: str, agent_id: str) -> Execution | None:
    """The execution this user's Idempotency-Key started within its window, if any."""
    try:
        earlier = IdempotencyRecord.get(idempotency_id(user_id, key), consistent_read=True)
    except DoesNotExist:
        return None
    if earlier.expires_at < now():
        return None
    if earlier.agent_id != agent_id:
        raise Conflict("This Idempotency-Key was used to start a run of another agent.")
    try:
        return Execution.get(earlier.execution_id, consistent_read=True)
    except DoesNotExist as err:
        raise Conflict("A request with this Idempotency-Key is still in progress; retry.") from err


def get(user_id: str, execution_id: str) -> Execution:
    """The caller's execution; another user's answers exactly as a missing one."""
    execution_id = validation.uuid_param(execution_id, "execution_id")
    try:
        execution = Execution.get(execution_id, consistent_read=True)
    except DoesNotExist:
        execution = None
    if execution is None or execution.user_id != user_id:
        raise NotFound(f"Execution {execution_id} not found.")
    return execution


def list_for_agent(
    user_id: str, agent_id: str, limit: int, token: str | None
) -> tuple[list[Execution], str | None]:
    agent = agents.get(user_id, agent_id)
    return query_page(Execution.by_agent, "agent_id", agent.agent_id, "execution_id", limit, token)


def list_for_user(user_id: str, params: dict[str, str]) -> tuple[list[Execution], str | None]:
    """The caller's runs across agents, newest first, filtered on the server. Runs of an agent
    since deleted stay listed: they are still the caller's."""
    filters = validation.execution_filters(params)
    conditions = []
    if "status" in filters:
        conditions.append(Execution.status == filters["status"])
    if "agent_id" in filters:
        conditions.append(Execution.agent_id == filters["agent_id"])
    if "q" in filters:
        conditions.append(Execution.query_folded.contains(filters["q"]))
    condition = None
    for each in conditions:
        condition = each if condition is None else condition & each
    limit = validation.page_limit(params)
    return query_page(Execution.by_user, "user_id", user_id, "execution_id", limit, params.get("next_token"), condition)


def events_page(
    user_id: str, execution_id: str, params: dict[str, str] | None
) -> tuple[list[Event], int | None]:
    execution = get(user_id, execution_id)
    params = params or {}
    after = validation.int_param(params.get("after"), "after", 0, 0, validation.MAX_AFTER)
    limit = validation.int_param(
        params.get("limit"), "limit", validation.DEFAULT_EVENTS_PAGE, 1, validation.MAX_EVENTS_PAGE
    )
    return list_events(execution.execution_id, after, limit)


def stop(user_id: str, execution_id: str) -> Execution:
    """Stop a run: a pending one ends here and never reaches the runtime; a running one is
    flagged, and the executor watching the flag cancels its generation."""
    execution = get(user_id, execution_id)
    if execution.status == "pending" and end(
        execution, "stopped", "stopped before it ran", Execution.stop_requested.set(True)
    ):
        return execution
    if execution.status == "running":
        try:
            with conditional():
                execution.update(actions=[Execution.stop_requested.set(True)], condition=Execution.status == "running")
            return execution
        except Conflict:
            execution.refresh(consistent_read=True)
    if execution.status == "stopped":
        return execution
    raise Conflict(f"Execution {execution.execution_id} has already {execution.status}.")


def conclude(execution: Execution, status: str, detail: Any, *actions: Any) -> dict[str, Any] | None:
    """Write the run's one terminal status; the content of its terminal event, or None when
    another writer ended it first. `detail` is the output, the error message or the stop reason
    (see OUTCOMES)."""
    content, recorded = OUTCOMES[status](detail)
    if not transition(execution, status, *recorded, *actions):
        return None
    count(f"Executions{status.capitalize()}")
    return content


def end(execution: Execution, status: str, detail: Any, *actions: Any) -> bool:
    """Finish a run that has no sender of its own here (stopped while pending, never queued,
    swept): its status, then its terminal event through the delivery the wiring step handed in."""
    content = conclude(execution, status, detail, *actions)
    if content is None:
        return False
    if _announce is None:
        raise RuntimeError("chalicelib is not wired: call chalicelib.wiring.wire(settings) first.")
    _announce(execution.execution_id, TERMINAL_EVENTS[status], content)
    return True
