"""The runtime's HTTP API (DESIGN.md §6): /health, /execute (NDJSON), cancel, and /mcp.

`python -m mcp_container.server` (or `python -m mcp_container`) serves it with uvicorn on
DYNAVERA_RUNTIME_HOST:DYNAVERA_RUNTIME_PORT, 0.0.0.0:8001 by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import contract
from mcp_container.config import Settings, configure_logging
from mcp_container.engine import Engine
from mcp_container.execution import Event, ExecuteRequest, InvalidRequest, run_execution, strict_json
from mcp_container.guard import Guard, error_response, refused_input
from mcp_container.runtime import Runtime
from mcp_container.scheduler import AlreadyRunning, QueueFull, Scheduler
from mcp_container.tools import create_mcp_server

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024  # input_data is at most 32 KiB (DESIGN.md §3), plus config
RETRY_AFTER_SECONDS = 5
KEEPALIVE_SECONDS = 5.0


class EventStream(StreamingResponse):
    """NDJSON events, one line per body chunk, so each token leaves as soon as it exists.

    `on_close` runs however the response ends, even if the client left before the first
    event was produced and the event generator's own `finally` never ran.
    """

    media_type = "application/x-ndjson"

    def __init__(self, events: AsyncIterator[Event], on_close: Callable[[], None]) -> None:
        super().__init__(_ndjson(events), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


async def _ndjson(events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    """One line per event, and an empty line after each quiet KEEPALIVE_SECONDS: a run waiting
    its turn keeps its client's read timeout from firing, and a client that has gone is
    noticed (the write fails) so its place is given up."""
    upcoming = asyncio.ensure_future(anext(events))
    try:
        while True:
            done, _ = await asyncio.wait({upcoming}, timeout=KEEPALIVE_SECONDS)
            if not done:
                yield b"\n"
                continue
            try:
                event = upcoming.result()
            except StopAsyncIteration:
                return
            yield (contract.dumps(event) + "\n").encode()
            upcoming = asyncio.ensure_future(anext(events))
    finally:
        upcoming.cancel()


def create_app(settings: Settings, engine: Engine | None = None) -> Guard:
    secret = settings.require_secret()
    runtime = Runtime(engine or Engine(settings), Scheduler(settings.queue_size))
    mcp_server = create_mcp_server(runtime)
    # Stateless: every MCP call stands alone, so a restarted runtime loses no client sessions.
    mcp_app = mcp_server.streamable_http_app(stateless_http=True, host=settings.host)

    async def health(_: Request) -> JSONResponse:
        if runtime.load_error is not None:
            return JSONResponse({"status": "failed", "message": runtime.load_error}, status_code=503)
        if not runtime.ready:
            return JSONResponse({"status": "loading"}, status_code=503)
        # 200 even when the store is unreachable: the load balancer must not replace a task for
        # what no task can fix; /execute answers 503 meanwhile.
        return JSONResponse({"status": "ok", **await asyncio.to_thread(runtime.engine.describe)})

    async def execute(request: Request) -> StreamingResponse | JSONResponse:
        if not runtime.ready:
            return error_response(contract.NOT_READY, "the runtime is still loading its model", {"Retry-After": "2"})
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return error_response(contract.TOO_LARGE, f"the body is larger than {MAX_BODY_BYTES} bytes")
        try:
            body: Any = strict_json(raw)
        except InvalidRequest as error:
            return refused_input(error)
        try:
            execute_request = ExecuteRequest.parse(body, request.headers)
        except InvalidRequest as error:
            return refused_input(error)
        # Before any event, so the executor keeps the run pending and retries it with backoff.
        if execute_request.config.collection_id is not None and not await asyncio.to_thread(
            runtime.engine.store.health
        ):
            retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            return error_response(contract.STORE_UNREACHABLE, "the document store cannot be reached", retry)
        try:
            job = runtime.scheduler.admit(execute_request.execution_id)
        except QueueFull as error:
            retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            return error_response(contract.BUSY, f"the runtime is busy: {error}", retry)
        except AlreadyRunning:
            return error_response(contract.CONFLICT, f"execution {execute_request.execution_id} is already running")
        events = run_execution(runtime.engine, runtime.scheduler, job, execute_request)
        return EventStream(events, on_close=lambda: runtime.scheduler.finish(job))

    async def cancel(request: Request) -> JSONResponse:
        execution_id = request.path_params["execution_id"]
        if not runtime.scheduler.cancel(execution_id):
            return error_response(contract.NOT_FOUND, f"no execution {execution_id} is running or waiting")
        return JSONResponse({"execution_id": execution_id, "status": "cancelling"}, status_code=202)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        loading = asyncio.create_task(runtime.load())
        async with mcp_server.session_manager.run():
            yield
        loading.cancel()

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/execute", execute, methods=["POST"]),
        Route("/executions/{execution_id}/cancel", cancel, methods=["POST"]),
        *mcp_app.routes,
    ]
    handlers = {HTTPException: _http_error, Exception: _internal_error}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    return Guard(app, secret, settings.allowed_origins)


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    code = {404: contract.NOT_FOUND, 405: contract.METHOD_NOT_ALLOWED}.get(error.status_code, contract.BAD_REQUEST)
    return error_response(code, str(error.detail), dict(error.headers or {}), error.status_code)


async def _internal_error(_: Request, error: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=error)
    return error_response(contract.INTERNAL_ERROR, "the runtime failed; see its logs")


def main() -> None:
    import uvicorn

    configure_logging("%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
