"""Delivery: an execution's events, from the seq each gets to the frame each subscriber receives.

The guarantee (DESIGN §4): every subscription receives each event with seq > its `after` exactly
once, in seq order, the terminal frame last. Why it holds:

1. Seqs. While a run is live its executor's Sender is the only writer of its log: `append`
   takes the next seq by conditional write, so no two events share one, and keeps the log it
   wrote. After the run ends, `end_run` appends the terminal event the same way.
2. Rows. A subscription row is written only while its execution is live (a transaction with a
   condition on the status, `subscribe`). Otherwise the subscribe handler replays the finished
   log itself (`replay_terminal`): every subscription has exactly one sender.
3. Cursors. The Sender keeps one cursor per subscription, the highest seq that subscriber was
   sent, starting at its row's `after`, and picks up new rows on every `refresh`. Each
   subscriber has its own worker posting its frames in order; the cursor moves only when API
   Gateway took the frame. A post that fails (429 LimitExceededException, a 500, a timeout) is
   tried again from the same cursor with backoff, so nothing is skipped; only a GoneException
   drops the subscriber (its connection and rows are deleted). A refused post delivered
   nothing, so its retry doubles nothing; a timeout is the one case where API Gateway may have
   delivered a frame it never confirmed, and then that frame can arrive twice. The lock guards
   the log and the cursors, never a post: a slow subscriber delays only itself.
4. The end. The terminal status is written first (runs.conclude); after it no row can be added
   (2), so the one refresh after it sees every row there will ever be. The terminal event is
   appended, and the run's sender waits (at most DRAIN_SECONDS) for every worker to reach it.
5. A lost sender. Each worker checkpoints its cursor into its row's `after`, at most once per
   CHECKPOINT_SECONDS. When an executor dies mid-run, whoever ends the run (the sweeper) builds
   a Sender from the log and each row resumes from its checkpoint: every live subscriber still
   receives every event, the terminal frame last. A post and a write are never one atomic step,
   so after a crash a sender must choose between a gap and a repeat; this one repeats what the
   dead sender posted after its last checkpoint (under CHECKPOINT_SECONDS of frames), and every
   frame carries its seq so clients drop a seq they hold. Without a crash nothing repeats.
   A subscriber that still fails when DRAIN_SECONDS pass keeps its row and checkpoint: it
   resubscribes from the last seq it holds, as every client does after a reconnect.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import DoesNotExist
from pynamodb.transactions import TransactWrite

import contract
from chalicelib import aws
from chalicelib.aws import connections_api
from chalicelib.clock import new_id
from chalicelib.errors import Conflict
from chalicelib.events import append_event, list_events
from chalicelib.models import Connection, Event, Execution, Subscription, conditional
from chalicelib.telemetry import count, logger, start_thread

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
# A failed post is tried again after RETRY_FIRST_SECONDS, doubling up to RETRY_CAP_SECONDS
# (API Gateway's LimitExceededException asks for exactly that).
RETRY_FIRST_SECONDS = 0.05
RETRY_CAP_SECONDS = 2.0
# How long the end of a run waits for its slowest subscriber. A run may end inside a REST stop,
# which API Gateway cuts at 29 s, so well under that.
DRAIN_SECONDS = 10.0
# How often a subscriber's cursor is written to its row, for a sender that takes over.
CHECKPOINT_SECONDS = 1.0
# A writer that has not seen the terminal status yet (an executor past its deadline) may take
# the seq meant for the terminal event; each attempt reads the log again and goes after it.
TERMINAL_WRITE_ATTEMPTS = 20


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


class Post(Enum):
    SENT = "sent"
    GONE = "gone"  # API Gateway says the connection is closed: it never comes back
    FAILED = "failed"  # throttled, a 5xx or a timeout: worth another try


def forget_connection(connection_id: str) -> None:
    for sub in Subscription.by_connection.query(connection_id):
        Subscription(sub.execution_id, connection_id).delete()
    try:
        Connection.get(connection_id).delete()
    except DoesNotExist:
        pass


def post(endpoint: str, connection_id: str, frame: dict[str, Any]) -> Post:
    """Post one frame once; a connection API Gateway reports gone is forgotten on the spot."""
    client = connections_api(endpoint)
    data = contract.dumps(frame).encode()
    try:
        client.post_to_connection(ConnectionId=connection_id, Data=data)
    except client.exceptions.GoneException:
        logger.info("connection gone", extra={"connection_id": connection_id})
        count("GoneConnections")
        forget_connection(connection_id)
        return Post.GONE
    except (BotoCoreError, ClientError) as err:
        logger.warning("posting to a connection failed", extra={"connection_id": connection_id, "reason": str(err)})
        count("PostsFailed")
        return Post.FAILED
    count("EventsSent")
    return Post.SENT


def post_to_connection(endpoint: str, connection_id: str, frame: dict[str, Any]) -> bool:
    """Post one reply frame (a pong, an error, execution_started), tried again while it fails
    for a passing reason; False when it could not be delivered."""
    deadline = time.monotonic() + DRAIN_SECONDS
    delay = RETRY_FIRST_SECONDS
    while True:
        outcome = post(endpoint, connection_id, frame)
        if outcome is not Post.FAILED or time.monotonic() + delay > deadline:
            return outcome is Post.SENT
        time.sleep(delay)  # backoff before the next try, as API Gateway's throttling asks
        delay = min(delay * 2, RETRY_CAP_SECONDS)


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


@dataclass(eq=False)
class _Subscriber:
    connection_id: str
    endpoint: str
    token: str
    sent: int  # the highest seq this subscription has been sent (or asked to skip)
    checkpointed: float = field(default_factory=time.monotonic)
    dropped: bool = False  # gone, unsubscribed, or replaced by a resubscription


class Sender:
    """The one sender of a run's frames while it is live: its log, a cursor and a worker per
    subscriber. `append`, `refresh` and `end` may be called from different threads (the
    executor's stream and its watcher)."""

    def __init__(self, execution_id: str, log: list[Event] | None = None) -> None:
        self.execution_id = execution_id
        self.log: list[Event] = log if log is not None else []
        self.subscribers: dict[str, _Subscriber] = {}
        self._changed = threading.Condition()
        self._workers: list[threading.Thread] = []
        # One post at a time per connection, across a subscriber and its resubscription.
        self._posting: dict[str, threading.Lock] = {}
        self._give_up_at: float | None = None

    @classmethod
    def from_log(cls, execution_id: str) -> Sender:
        """A sender for a run whose events someone else wrote (a lost executor): each row
        resumes from its checkpoint."""
        return cls(execution_id, read_log(execution_id))

    @property
    def last_seq(self) -> int:
        return len(self.log)

    def append(self, event_type: str, content: dict[str, Any]) -> Event:
        """Write the run's next event and hand it to every subscriber's worker."""
        event = append_event(self.execution_id, self.last_seq + 1, event_type, content)
        if not self.subscribers and not self.log:
            # A start_agent subscription can land just after the claim: look again rather than
            # leave the first event to the watcher's next tick. Later ones are the watcher's (a
            # query per token frame of a run nobody follows would cost ~10 reads a second).
            self.refresh()
        with self._changed:
            self.log.append(event)
            self._changed.notify_all()
        return event

    def refresh(self) -> None:
        """Pick up new subscriptions (each starts from its row's `after`); drop removed ones."""
        rows = {row.connection_id: row for row in Subscription.query(self.execution_id, consistent_read=True)}
        with self._changed:
            for connection_id, subscriber in list(self.subscribers.items()):
                row = rows.get(connection_id)
                if row is None or row.token != subscriber.token or subscriber.dropped:
                    subscriber.dropped = True
                    del self.subscribers[connection_id]
            for connection_id, row in rows.items():
                if connection_id not in self.subscribers:
                    subscriber = _Subscriber(connection_id, row.endpoint, row.token, int(row.after))
                    self.subscribers[connection_id] = subscriber
                    self._workers.append(start_thread(self._deliver, subscriber))
            self._changed.notify_all()

    def end(self, event_type: str, content: dict[str, Any]) -> Event:
        """Append the terminal event (its status is written already), send it to every
        subscriber there will ever be, and wait for each to have it, at most DRAIN_SECONDS."""
        self.refresh()
        for _ in range(TERMINAL_WRITE_ATTEMPTS):
            try:
                event = self.append(event_type, content)
                break
            except Conflict:
                with self._changed:
                    self.log = read_log(self.execution_id)
        else:
            raise Conflict(f"Execution {self.execution_id}: its terminal event could not be written.")
        self.drain()
        return event

    def drain(self) -> None:
        """Wait for every worker to have sent the whole log, or for DRAIN_SECONDS to pass."""
        with self._changed:
            self._give_up_at = time.monotonic() + DRAIN_SECONDS
            self._changed.notify_all()
        for worker in self._workers:
            worker.join(max(0.0, self._give_up_at - time.monotonic()))
        with self._changed:
            behind = [s for s in self.subscribers.values() if s.sent < self.last_seq and not s.dropped]
        if behind:
            connections = [s.connection_id for s in behind]
            logger.warning("subscribers still behind at the end of the run", extra={"connections": connections})
            count("SubscribersBehind", len(behind))
            for subscriber in behind:
                self._checkpoint(subscriber)

    def _next(self, subscriber: _Subscriber) -> Event | None:
        """The subscriber's next frame, waiting for one; None when its work is over."""
        with self._changed:
            while not subscriber.dropped and subscriber.sent >= len(self.log) and self._give_up_at is None:
                self._changed.wait()
            if subscriber.dropped or subscriber.sent >= len(self.log) or self._past_drain():
                return None
            return self.log[subscriber.sent]

    def _past_drain(self) -> bool:
        return self._give_up_at is not None and time.monotonic() >= self._give_up_at

    def _deliver(self, subscriber: _Subscriber) -> None:
        """A subscriber's worker: its frames in order, each tried until it is taken or the
        connection is gone."""
        lock = self._posting.setdefault(subscriber.connection_id, threading.Lock())
        delay = RETRY_FIRST_SECONDS
        while (event := self._next(subscriber)) is not None:
            with lock:
                outcome = post(subscriber.endpoint, subscriber.connection_id, frame_for(event))
            if outcome is Post.GONE:
                with self._changed:
                    subscriber.dropped = True
                return
            if outcome is Post.FAILED:
                time.sleep(delay)  # backoff: a throttled or failing connection is tried again
                delay = min(delay * 2, RETRY_CAP_SECONDS)
                continue
            delay = RETRY_FIRST_SECONDS
            with self._changed:
                subscriber.sent = max(subscriber.sent, int(event.seq))
            if time.monotonic() - subscriber.checkpointed >= CHECKPOINT_SECONDS:
                self._checkpoint(subscriber)

    def _checkpoint(self, subscriber: _Subscriber) -> None:
        """Write the subscriber's cursor into its row, for a sender that takes the run over; never
        under the lock (a write must not hold up the other subscribers)."""
        subscriber.checkpointed = time.monotonic()
        try:
            with conditional():
                Subscription(self.execution_id, subscriber.connection_id).update(
                    actions=[Subscription.after.set(subscriber.sent)],
                    condition=Subscription.token == subscriber.token,
                )
        except Conflict:
            pass  # resubscribed or removed meanwhile: that row has its own cursor


def end_run(execution_id: str, event_type: str, content: dict[str, Any]) -> None:
    """The terminal event of a run whose own sender is not here (stopped while pending, failed
    at start, or its executor lost), sent to every subscriber from its checkpoint."""
    Sender.from_log(execution_id).end(event_type, content)
