"""/execute's NDJSON body: an empty keepalive line after every quiet stretch, so a run waiting
its turn is neither timed out by its client nor left holding a place when the client goes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mcp_container import server


async def slow_events(pause: float, closed: list[bool]) -> AsyncIterator[dict[str, Any]]:
    try:
        yield {"type": "progress", "stage": "queued", "message": "waiting"}
        await asyncio.sleep(pause)
        yield {"type": "result", "output": {}}
    finally:
        closed.append(True)


async def collect(pause: float, closed: list[bool]) -> list[bytes]:
    return [line async for line in server._ndjson(slow_events(pause, closed))]


def test_quiet_stretches_get_empty_keepalive_lines_between_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "KEEPALIVE_SECONDS", 0.05)
    closed: list[bool] = []
    lines = asyncio.run(collect(0.3, closed))
    assert json.loads(lines[0])["stage"] == "queued" and json.loads(lines[-1])["type"] == "result"
    assert set(lines[1:-1]) == {b"\n"} and len(lines[1:-1]) >= 3
    assert closed == [True]


def test_a_client_that_goes_ends_the_events_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "KEEPALIVE_SECONDS", 0.05)
    closed: list[bool] = []

    async def leave_after_first_keepalive() -> None:
        stream = server._ndjson(slow_events(10, closed))
        assert json.loads(await anext(stream))["stage"] == "queued"
        assert await anext(stream) == b"\n"
        await stream.aclose()  # what Starlette does when the client has gone
        await asyncio.sleep(0.01)

    asyncio.run(leave_after_first_keepalive())
    assert closed == [True]
