"""The executor's HTTP client for the runtime (mcp_container): the NDJSON run stream, and closing it.

A run is cancelled by closing its /execute stream: the runtime frees the job whose client has
gone, on whichever task holds it, so a stop never depends on where a request lands.

httpx is imported inside the functions: it loads its command-line extras too (~100 ms), and
only the executor needs it, so the API's cold start does not pay for it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

import contract
from chalicelib.telemetry import logger, trace_headers

if TYPE_CHECKING:
    import httpx

# Answers that mean "not now": queue full, still loading, this execution already admitted.
BUSY_STATUSES = {
    contract.HTTP_STATUS[contract.BUSY]: "at capacity",
    contract.HTTP_STATUS[contract.NOT_READY]: "still loading",
    contract.HTTP_STATUS[contract.CONFLICT]: "still holding an earlier attempt of this run",
}


# Powertools' cache of the secret; the client is cached for the container's life anyway.
SECRET_MAX_AGE_SECONDS = 3600


class RuntimeFailure(Exception):
    """The runtime refused the run or broke its stream; the message is fit for the run's user."""


class RuntimeBusy(RuntimeFailure):
    """Nothing ran: the runtime was busy, loading or unreachable, so the run may wait and retry."""


# The runtime's base URL, its secret given outright (locally) and the secret's ARN (in AWS),
# handed over by the wiring step.
_target: tuple[str, str, str | None] | None = None


def configure(url: str, secret: str, secret_arn: str | None) -> None:
    """Talk to the runtime at `url` from now on; the client for the previous one is forgotten."""
    global _target
    _target = (url, secret, secret_arn)
    _client.cache_clear()


@cache
def _client() -> httpx.Client:
    import httpx

    if _target is None:
        raise RuntimeError("chalicelib is not wired: call chalicelib.wiring.wire(settings) first.")
    url, secret, secret_arn = _target
    secret = _runtime_secret(secret, secret_arn)
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    # Reads may pause for as long as the model takes between tokens; connects must be quick.
    return httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(60.0, connect=2.0))


def _runtime_secret(secret: str, secret_arn: str | None) -> str:
    """The runtime's bearer secret: given outright locally; in AWS read from Secrets Manager once
    per container (the client holding it is cached), so no function setting shows it in plain text."""
    if secret_arn is None:
        return secret
    # Imported here: Powertools' parameters bring boto3, which only the executor's first run needs.
    from aws_lambda_powertools.utilities import parameters

    return str(parameters.get_secret(secret_arn, max_age=SECRET_MAX_AGE_SECONDS))


class RunStream:
    """An open /execute stream: its events in order, and `close` for any thread to end it."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import httpx

        try:
            for line in self.response.iter_lines():
                if line.strip():
                    yield _event(line)
        except httpx.HTTPError as err:
            logger.warning("the runtime stream broke", extra={"reason": f"{type(err).__name__}: {err}"})
            raise RuntimeFailure("The connection to the runtime broke during the run.") from err

    def close(self) -> None:
        """Shut the socket down: that wakes a read blocked in another thread, and the runtime
        sees its client go and stops the generation."""
        stream = self.response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            self.response.close()
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by its other end


@contextmanager
def open_run(payload: dict[str, Any]) -> Iterator[RunStream]:
    """POST /execute; RuntimeBusy when the runtime cannot take the run now, RuntimeFailure
    when it refuses it for good."""
    import httpx

    try:
        # Strict JSON, as the runtime parses it; only a value stored before the API refused such
        # input can fail here, and no redelivery would ever send it, so the run fails for good.
        content = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode()
    except (ValueError, UnicodeEncodeError) as err:
        raise RuntimeFailure(f"The run's input cannot be sent to the runtime: it is not strict JSON ({err}).") from err
    headers = {"Content-Type": "application/json", **trace_headers()}
    try:
        with _client().stream("POST", "/execute", content=content, headers=headers) as response:
            if response.status_code != 200:
                response.read()
                logger.warning(
                    "the runtime refused the run", extra={"status": response.status_code, "body": response.text[:500]}
                )
                if response.status_code in BUSY_STATUSES:
                    raise RuntimeBusy(f"The runtime was {BUSY_STATUSES[response.status_code]}.")
                raise RuntimeFailure(f"The runtime refused the run (HTTP {response.status_code}).")
            yield RunStream(response)
    except httpx.TransportError as err:
        logger.warning("the runtime could not be reached", extra={"reason": f"{type(err).__name__}: {err}"})
        raise RuntimeBusy("The runtime could not be reached.") from err


def _event(line: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError as err:
        raise RuntimeFailure(f"The runtime sent a malformed event: {line[:200]!r}") from err
    if not isinstance(event, dict):
        raise RuntimeFailure(f"The runtime sent a malformed event: {line[:200]!r}")
    return event
