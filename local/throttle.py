"""The per-key request rate the edge enforces in AWS (a WAF rate-based rule keyed on the
Authorization header, infra/edge.yaml), played by the local gateway: at most N requests per
key in any window of RATE_WINDOW_SECONDS; more are refused with 429 and Retry-After."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

# Keys tracked before stale ones are dropped: a flood of made-up keys must not grow memory.
MAX_TRACKED = 10_000


class RateLimit:
    def __init__(self, requests: int, window: float) -> None:
        self.requests = requests
        self.window = window
        self.seen: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def retry_after(self, key: str) -> int | None:
        """Count one request of this key; None if it may pass, else the seconds to wait.
        Refused requests are not counted, so a client that waits as told gets through."""
        moment = time.monotonic()
        with self.lock:
            if len(self.seen) >= MAX_TRACKED:
                self._drop_stale(moment)
            times = self.seen.setdefault(key, deque())
            while times and times[0] <= moment - self.window:
                times.popleft()
            if len(times) >= self.requests:
                return max(1, math.ceil(times[0] + self.window - moment))
            times.append(moment)
            return None

    def _drop_stale(self, moment: float) -> None:
        for key in [k for k, times in self.seen.items() if not times or times[-1] <= moment - self.window]:
            del self.seen[key]
