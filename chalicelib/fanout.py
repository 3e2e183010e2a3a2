"""Fan-out: an execution's events, as WebSocket frames, to the connections subscribed to it.

Every subscription receives each event with seq > its `after` exactly once, in order. One
sender per run at a time keeps that true without a write per event per subscriber:

- A subscription row is written only while its execution is not terminal (a transaction with
  a condition on the status). Otherwise the subscribe handler replays the log itself.
- While a run is live, its executor's Broadcast is the only sender. It keeps a cursor per
  subscriber in memory, picks up new rows on every refresh and sends a newcomer its missing
  range before the next live event.
- Whoever ends a run refreshes after the terminal status is written, so it sees every row that
  will ever exist for the run, then sends the terminal event: nothing falls between.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import DoesNotExist
from pynamodb.transactions import TransactWrite

import contract
from chalicelib import aws
from chalicelib.aws import connections_api
from chalicelib.clock import new_id
from chalicelib.errors import Conflict
from chalicelib.events import list_events
from chalicelib.models import Connection, Event, Execution, Subscription, conditional
from chalicelib.telemetry import count, logger

# API Gateway refuses frames over 32 KB; source excerpts in the completion frame are cut to fit.
EXCERPT_CHARS = 400
TERMINAL_FRAMES = {
    "completed": "execution_completed",
    "error": "execution_error",
    "stopped": "execution_stopped",
}
LIVE_STATUSES = ("pending", "running")
LOG_PAGE = 500
# The run's terminal status is written just before its terminal event; a replay that saw the
# status waits this long for the event.
TERMINAL_EVENT_WAIT_SECONDS = 10.0


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
    """Post one frame; False when it could not be delivered (a connection API Gateway reports
    gone is forgotten on the spot)."""
    client = connections_api(endpoint)
    data = contract.dumps(frame).encode()
    try:
        client.post_to_connection(ConnectionId=connection_id, Data=data)
    except client.exceptions.GoneException:
        logger.info("connection gone", extra={"connection_id": connection_id})
        count("GoneConnections")
        forget_connection(connection_id)
        return False
    except (BotoCoreError, ClientError):
        # botocore has retried already; this subscriber stops here rather than see a gap.
        logger.exception("posting to a connection failed", extra={"connection_id": connection_id})
        return False
    count("EventsSent")
    return True


def close_connection(endpoint: str, connection_id: str) -> None:
    """Close a client's socket (API Gateway's DeleteConnection) and forget it at once; its
    $disconnect finds nothing left to do."""
    client = connections_api(endpoint)
    try:
        client.delete_connection(ConnectionId=connection_id)
    except client.exceptions.GoneException:
        pass
    forget_connection(connection_id)
    count("ConnectionsClosed")


def subscribe(execution_id: str, connection: Connection, after: int) -> bool:
    """Record a subscription if the execution is still live; False when it is terminal already,
    and the caller must replay the log itself (no other sender will)."""
    row = Subscription(
        execution_id,
        connection.connection_id,
        endpoint=connection.endpoint,
        after=after,
        token=new_id(),
        expires_at=connection.expires_at,
    )
    try:
        with conditional(), TransactWrite(connection=aws.dynamodb()) as transaction:
            transaction.condition_check(Execution, execution_id, condition=Execution.status.is_in(*LIVE_STATUSES))
            transaction.save(row)
    except Conflict:
        return False
    return True


def replay_terminal(execution_id: str, connection: Connection, after: int) -> None:
    """Send a finished execution's log after `after` to one connection."""
    events = read_log(execution_id, until_terminal=True)
    for event in events[after:]:
        if not post_to_connection(connection.endpoint, connection.connection_id, frame_for(event)):
            return


def read_log(execution_id: str, until_terminal: bool = False) -> list[Event]:
    """The whole log of an execution, in seq order; with `until_terminal`, waits (briefly) for
    the terminal event whose status is already written."""
    deadline = time.monotonic() + TERMINAL_EVENT_WAIT_SECONDS
    events: list[Event] = []
    while True:
        page, _ = list_events(execution_id, len(events), LOG_PAGE)
        events += page
        if len(page) == LOG_PAGE:
            continue
        ended = bool(events) and events[-1].event_type in TERMINAL_FRAMES
        if not until_terminal or ended or time.monotonic() > deadline:
            return events
        time.sleep(0.02)


@dataclass
class _Follower:
    endpoint: str
    token: str
    sent: int  # the highest seq this subscription has been sent (or asked to skip)


class Broadcast:
    """The one sender of a run's frames: its log so far, and a cursor per subscriber.

    `publish` and `refresh` may be called from different threads (the executor's stream and
    its watcher); a lock keeps each subscriber's frames in seq order.
    """

    def __init__(self, execution_id: str, log: list[Event] | None = None, floor: int = 0) -> None:
        self.execution_id = execution_id
        self.log: list[Event] = log if log is not None else []
        # Subscribers found later start no lower than this (a run taken over from a lost sender).
        self.floor = floor
        self.followers: dict[str, _Follower] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_log(cls, execution_id: str, resume: bool = False) -> Broadcast:
        """A sender for a run whose events someone else wrote; `resume` when that someone may
        have sent them already, so only what comes next is sent."""
        log = read_log(execution_id)
        return cls(execution_id, log, floor=len(log) if resume else 0)

    @property
    def last_seq(self) -> int:
        return len(self.log)

    def refresh(self) -> None:
        """Pick up new subscriptions, sending each its missing range; drop removed ones."""
        rows = {row.connection_id: row for row in Subscription.query(self.execution_id, consistent_read=True)}
        with self._lock:
            for connection_id in [c for c in self.followers if c not in rows]:
                del self.followers[connection_id]
            for connection_id, row in rows.items():
                follower = self.followers.get(connection_id)
                if follower is None or follower.token != row.token:
                    follower = _Follower(row.endpoint, row.token, max(int(row.after), self.floor))
                    self.followers[connection_id] = follower
                self._catch_up(connection_id, follower)

    def publish(self, event: Event) -> None:
        """Add the next event of the log and send every subscriber what it is missing."""
        with self._lock:
            if int(event.seq) == len(self.log) + 1:
                self.log.append(event)
            for connection_id, follower in list(self.followers.items()):
                self._catch_up(connection_id, follower)

    def _catch_up(self, connection_id: str, follower: _Follower) -> None:
        while follower.sent < len(self.log):
            if not post_to_connection(follower.endpoint, connection_id, frame_for(self.log[follower.sent])):
                del self.followers[connection_id]
                return
            follower.sent += 1
