"""Test-side helpers for live runs: a WebSocket client that records frames, and waits with deadlines."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from websockets.sync.client import ClientConnection, connect

from local.stack import Stack

# DESIGN §4, written once for every suite: a run's last event, the frame that carries it, its status.
TERMINAL_FRAMES = {"completed": "execution_completed", "error": "execution_error", "stopped": "execution_stopped"}
TERMINAL = set(TERMINAL_FRAMES.values())
TERMINAL_STATUSES = {"completed", "failed", "stopped"}


class WsClient:
    def __init__(self, stack: Stack, key: str) -> None:
        self._exit = ExitStack()
        self.ws: ClientConnection = self._exit.enter_context(
            connect(f"{stack.ws_url}?token={key}", open_timeout=10, max_size=2**20)
        )
        self.frames: list[dict[str, Any]] = []
        self.received_at: list[float] = []

    def send(self, frame: dict[str, Any] | str) -> None:
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def next_frame(self, timeout: float = 30.0) -> dict[str, Any]:
        frame = json.loads(self.ws.recv(timeout=timeout))
        self.frames.append(frame)
        self.received_at.append(time.monotonic())
        return frame

    def until(self, done: Callable[[dict[str, Any]], bool], timeout: float = 120.0) -> list[dict[str, Any]]:
        """Frames up to and including the first one `done` accepts."""
        deadline = time.monotonic() + timeout
        start = len(self.frames)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching frame within {timeout} s; got {self.frames[start:]}")
            frame = self.next_frame(timeout=left)
            if done(frame):
                return self.frames[start:]

    def until_terminal(self, execution_id: str, timeout: float = 120.0) -> list[dict[str, Any]]:
        return self.until(lambda f: f.get("type") in TERMINAL and f.get("execution_id") == execution_id, timeout)

    def close(self) -> None:
        self._exit.close()


def seq_frames(frames: list[dict[str, Any]], execution_id: str) -> list[dict[str, Any]]:
    """The frames of one execution that carry a seq, as they arrived: no dedupe, no reordering
    (the server guarantees each seq once, in order; DESIGN §4)."""
    return [f for f in frames if f.get("execution_id") == execution_id and isinstance(f.get("seq"), int)]


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        time.sleep(every)
