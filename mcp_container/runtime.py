"""What the HTTP routes and the MCP tools share: the engine, the scheduler, and whether loading is done."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from mcp_container.engine import Engine
from mcp_container.scheduler import Scheduler

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    engine: Engine
    scheduler: Scheduler
    ready: bool = False
    load_error: str | None = field(default=None)

    async def load(self) -> None:
        """Load the engine off the event loop, so /health answers 503 meanwhile."""
        try:
            await asyncio.to_thread(self.engine.load)
        except Exception as error:  # reported by /health, which is what ECS and the tests watch
            self.load_error = str(error)
            log.exception("runtime failed to load")
            return
        self.ready = True
