"""Log lines name the run they are about, also when runs share an executor process: each
invocation's execution_id is kept per thread (the local poller runs invocations as threads). And
importing the app leaves the service logger as telemetry set it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from chalicelib.telemetry import logger
from tests.fixtures.scripted import HOLD
from tests.handlers.conftest import Handlers
from tests.handlers.test_executor import ANSWER, started_run
from tests.live import wait_until


class Lines(logging.Handler):
    """The JSON lines the service logs, as its own formatter writes them."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logger.registered_formatter)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_concurrent_runs_log_under_their_own_execution_id(h: Handlers) -> None:
    runs = [started_run(h) for _ in range(2)]
    h.runtime.play(ANSWER[0], HOLD, ANSWER[1], ANSWER[3])
    deliveries = [threading.Thread(target=h.deliver) for _ in runs]
    for delivery in deliveries:
        delivery.start()
    wait_until(lambda: len(h.runtime.requests) == 2, 10, "both runs at the runtime")
    for _, _, connection_id in runs:
        h.connections.gone.add(connection_id)  # the next frame to each is answered 410: a log line
    lines = Lines()
    logger.addHandler(lines)

    def gone_lines() -> list[dict[str, Any]]:
        return [line for line in lines.lines if line.get("message") == "connection gone"]

    try:
        h.runtime.released.set()
        # Each subscriber's worker posts (and logs) on its own thread: wait for both lines.
        wait_until(lambda: len(gone_lines()) >= len(runs), 30, "a 'connection gone' line per run")
        for delivery in deliveries:
            delivery.join(30)
    finally:
        logger.removeHandler(lines)
    gone = gone_lines()
    assert {line["connection_id"]: line.get("execution_id") for line in gone} == {
        connection_id: execution_id for _, execution_id, connection_id in runs
    }


def test_importing_the_app_leaves_the_service_logger_as_telemetry_set_it() -> None:
    # Chalice configures its app logger, the same "dynavera" logger, when it sees no handler on
    # the sys.stdout of the moment: imported under another stdout (pytest's capture), it set it to
    # ERROR and the handlers' INFO lines were lost for the rest of the session.
    probe = (
        "import io, logging, sys; from chalicelib.telemetry import logger; "
        "log = logging.getLogger('dynavera'); before = (log.level, log.propagate, list(log.handlers)); "
        "sys.stdout = io.StringIO(); import app; sys.stdout = sys.__stdout__; "
        "print(before == (log.level, log.propagate, list(log.handlers)), logging.getLevelName(log.level))"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "INFO"], done.stdout + done.stderr
