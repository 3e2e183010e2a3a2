"""Reading the runtime's NDJSON event streams in tests, with each event's arrival time."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.fixtures.runtime import FNIRS_COLLECTION_ID


@dataclass
class EventStream:
    """An open /execute response; events are read on demand so a test can act mid-stream."""

    execution_id: str
    response: httpx.Response
    events: list[dict[str, Any]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lines: Iterator[str] = self.response.iter_lines()

    def next_event(self) -> dict[str, Any]:
        for line in self._lines:
            if line.strip():
                event = json.loads(line)
                self.events.append(event)
                self.arrived.append(time.monotonic())
                return event
        raise EOFError(f"stream ended after {self.events}")

    def until(self, *types: str) -> dict[str, Any]:
        while (event := self.next_event())["type"] not in types:
            pass
        return event

    def rest(self) -> list[dict[str, Any]]:
        start = len(self.events)
        for _ in self._lines_left():
            pass
        return self.events[start:]

    def _lines_left(self) -> Iterator[dict[str, Any]]:
        while True:
            try:
                yield self.next_event()
            except EOFError:
                return

    def close(self) -> None:
        self.response.close()


def start_execution(client: httpx.Client, query: str, **config: Any) -> EventStream:
    """/execute on the demo collection unless `collection_id` says otherwise (None: no retrieval)."""
    config.setdefault("collection_id", FNIRS_COLLECTION_ID)
    execution_id = str(uuid.uuid4())
    body = {
        "execution_id": execution_id,
        "agent_id": "test-agent",
        "query": query,
        "input_data": {"query": query},
        "config": config,
    }
    response = client.send(client.build_request("POST", "/execute", json=body), stream=True)
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return EventStream(execution_id, response)
