"""One generation at a time per model, behind a bounded wait queue, each cancellable by execution_id.

Runs on the server's event loop. Everything that releases a place is synchronous, so it
also works from a `finally` in a task that is being cancelled (a client that went away).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field


class QueueFull(Exception):
    """Every place, running and waiting, is taken; the caller should retry later."""


class AlreadyRunning(Exception):
    """An execution with this id is already admitted; a second one would be a duplicate."""


@dataclass(eq=False)
class Job:
    execution_id: str
    # Read by the generation thread between tokens; set by cancel or by a dropped client.
    stop: threading.Event = field(default_factory=threading.Event)
    # Wakes the waiting stream when its turn comes or it is cancelled while waiting.
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def cancelled(self) -> bool:
        return self.stop.is_set()


class Scheduler:
    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self._waiting: deque[Job] = deque()
        self._running: Job | None = None
        self._jobs: dict[str, Job] = {}

    def admit(self, execution_id: str) -> Job:
        if execution_id in self._jobs:
            raise AlreadyRunning(execution_id)
        if len(self._waiting) >= self.queue_size and self._running is not None:
            raise QueueFull(f"{len(self._waiting)} executions are already waiting")
        job = Job(execution_id)
        self._jobs[execution_id] = job
        self._waiting.append(job)
        self._start_next()
        return job

    def is_running(self, job: Job) -> bool:
        return self._running is job

    async def wait_turn(self, job: Job) -> bool:
        """Wait until `job` may use the model; False when it was cancelled first."""
        await job.wake.wait()
        return not job.cancelled

    def cancel(self, execution_id: str) -> bool:
        job = self._jobs.get(execution_id)
        if job is None:
            return False
        job.stop.set()
        job.wake.set()
        if job in self._waiting:  # its place goes to the next one now, not when its stream ends
            self._waiting.remove(job)
        return True

    def finish(self, job: Job) -> None:
        """Give up `job`'s place, running or waiting, and stop its generation if it has one."""
        job.stop.set()
        job.wake.set()
        self._jobs.pop(job.execution_id, None)
        if self._running is job:
            self._running = None
        elif job in self._waiting:
            self._waiting.remove(job)
        self._start_next()

    def _start_next(self) -> None:
        if self._running is None and self._waiting:
            self._running = self._waiting.popleft()
            self._running.wake.set()
