"""The executor's HTTP client for the runtime (mcp_container): readiness, the NDJSON run stream, cancel.

httpx is imported inside the functions: it loads its command-line extras too (~100 ms), and
only the executor needs it, so the API's cold start does not pay for it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from chalicelib.settings import settings

if TYPE_CHECKING:
    import httpx


class RuntimeFailure(Exception):
    """The runtime could not be reached, refused the run, or broke its stream."""


class RuntimeUnavailable(RuntimeFailure):
    """The runtime did not answer healthy: nothing was sent to it, so the run may be retried."""


@cache
def _client() -> httpx.Client:
    import httpx

    # Reads may pause for as long as the model takes between tokens; connects must be quick.
    return httpx.Client(base_url=settings.mcp_agent_url, timeout=httpx.Timeout(60.0, connect=2.0))


def wait_until_ready(attempts: int, first_backoff: float = 0.25) -> None:
    """Succeed once the runtime answers healthy, backing off between tries; else RuntimeUnavailable."""
    import httpx

    backoff = first_backoff
    reason = "no answer"
    for attempt in range(attempts):
        try:
            response = _client().get("/health", timeout=2.0)
            if response.status_code == 200:
                return
            reason = f"/health answered {response.status_code}"
        except httpx.HTTPError as err:
            reason = f"{type(err).__name__}: {err}"
        if attempt + 1 < attempts:
            time.sleep(backoff)
            backoff *= 2
    raise RuntimeUnavailable(f"The runtime at {settings.mcp_agent_url} is unavailable ({reason}).")


@contextmanager
def stream_run(payload: dict[str, Any]) -> Iterator[Iterator[dict[str, Any]]]:
    """POST /execute and yield its events one by one, as the runtime writes them."""
    import httpx

    try:
        with _client().stream("POST", "/execute", json=payload) as response:
            if response.status_code != 200:
                response.read()
                raise RuntimeFailure(
                    f"The runtime refused the run ({response.status_code}): {response.text[:300]}"
                )
            yield (_event(line) for line in response.iter_lines() if line.strip())
    except httpx.TransportError as err:
        raise RuntimeFailure(f"The runtime connection failed: {type(err).__name__}: {err}") from err


def _event(line: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError as err:
        raise RuntimeFailure(f"The runtime sent a malformed event: {line[:200]!r}") from err
    if not isinstance(event, dict):
        raise RuntimeFailure(f"The runtime sent a malformed event: {line[:200]!r}")
    return event


def cancel_generation(execution_id: str) -> None:
    import httpx

    try:
        _client().post(f"/executions/{execution_id}/cancel", timeout=2.0)
    except httpx.HTTPError:
        pass  # the stream's own end, or the sweeper's deadline, settles the run either way
