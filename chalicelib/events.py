"""The event log of an execution: appended with gap-free seqs by conditional write, read in order."""

from __future__ import annotations

from typing import Any

from chalicelib.clock import now_iso
from chalicelib.errors import Conflict
from chalicelib.models import Event, conditional


def append_event(execution_id: str, seq: int, event_type: str, content: dict[str, Any]) -> Event:
    """Write event `seq`; a seq already taken (a redelivered run, a racing writer) is a Conflict."""
    event = Event(
        execution_id, seq, event_type=event_type, content=content, timestamp=now_iso()
    )
    with conditional(Conflict(f"Event {seq} of execution {execution_id} exists already.")):
        event.save(condition=Event.seq.does_not_exist())
    return event


def list_events(execution_id: str, after: int, limit: int) -> tuple[list[Event], int | None]:
    """Events with seq > after, in seq order, and the `after` of the next page if there is one."""
    events = list(
        Event.query(
            execution_id,
            Event.seq > after,
            limit=limit + 1,
            consistent_read=True,
        )
    )
    if len(events) <= limit:
        return events, None
    return events[:limit], int(events[limit - 1].seq)
