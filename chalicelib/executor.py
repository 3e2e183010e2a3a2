"""The executor: one run message in, the runtime's stream out to the event log and subscribers.

SQS delivers at least once, so the claim pending → running is a conditional update: a
duplicate delivery, or a run already stopped, does nothing. Every event gets the next seq by
conditional write, then is posted to the execution's subscribers.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from functools import cache
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib import runtime_client
from chalicelib.clock import iso, now
from chalicelib.events import append_event
from chalicelib.fanout import publish
from chalicelib.models import Execution
from chalicelib.runs import TERMINAL, end, transition
from chalicelib.settings import settings
from chalicelib.telemetry import count, flush, logger

# The runs queue's redrive sends a message to the DLQ after this many receives (infra/data.yaml).
MAX_RECEIVES = 3
STOP_POLL_SECONDS = 0.4


class TokenCoalescer:
    """Token text joined into few events: the first piece at once (first-token latency), then a
    piece per share of the answer's token budget, so a 200-token answer is about seven writes
    however fast the model runs. A stalled stream or a long piece is written early."""

    def __init__(self, max_tokens: int, pieces: int = 5, max_wait: float = 5.0, max_chars: int = 2000) -> None:
        self.quota = max(1, min(40, -(-max_tokens // pieces)))
        self.max_wait = max_wait
        self.max_chars = max_chars
        self.text = ""
        self.count = 0
        self.last_flush: float | None = None

    def add(self, text: str) -> str | None:
        """Buffer one token's text; return what should be written now, if anything."""
        self.text += text
        self.count += 1
        moment = time.monotonic()
        due = (
            self.last_flush is None
            or self.count >= self.quota
            or len(self.text) >= self.max_chars
            or moment - self.last_flush >= self.max_wait
        )
        if not due:
            return None
        self.last_flush = moment
        return self.drain()

    def drain(self) -> str | None:
        text, self.text, self.count = self.text, "", 0
        return text or None


class Run:
    """One execution's pass through the runtime, owning its seq counter."""

    def __init__(self, execution: Execution) -> None:
        self.execution = execution
        self.execution_id = execution.execution_id
        # Only a claimed run writes its log, and only one delivery can claim it: the log is empty.
        self.seq = 0

    def emit(self, event_type: str, content: dict[str, Any]) -> None:
        self.seq += 1
        publish(append_event(self.execution_id, self.seq, event_type, content))

    def finish(self, status: str, event_type: str, content: dict[str, Any], *actions: Any) -> None:
        if end(self.execution, status, event_type, content, *actions, seq=self.seq + 1):
            self.seq += 1

    def execute(self) -> None:
        self.emit("started", {"agent_id": self.execution.agent_id})
        payload = {
            "execution_id": self.execution_id,
            "agent_id": self.execution.agent_id,
            "query": self.execution.input_data["query"],
            "input_data": self.execution.input_data,
            "config": self.execution.config,
        }
        stop_watch = threading.Event()
        watcher = threading.Thread(target=self._watch_stop, args=(stop_watch,), daemon=True)
        watcher.start()
        try:
            self._consume(payload)
        except runtime_client.RuntimeFailure as err:
            self.finish("failed", "error", {"message": str(err)}, Execution.error_message.set(str(err)))
        except Exception:
            # Never leave a claimed run "running": a redelivery would not take it up again.
            logger.exception("the run failed inside the executor")
            message = "The run failed inside the platform; see the executor's logs."
            self.finish("failed", "error", {"message": message}, Execution.error_message.set(message))
            raise
        finally:
            stop_watch.set()

    def _consume(self, payload: dict[str, Any]) -> None:
        tokens = TokenCoalescer(int(payload["config"].get("max_tokens", 256)))
        with runtime_client.stream_run(payload) as stream:
            for item in stream:
                kind = item.get("type")
                if kind == "token":
                    text = tokens.add(str(item.get("text", "")))
                    if text:
                        self.emit("token", {"text": text})
                    continue
                rest = tokens.drain()
                if rest:
                    self.emit("token", {"text": rest})
                if kind == "progress":
                    self.emit("progress", {"stage": item.get("stage"), "message": item.get("message")})
                elif kind == "result":
                    output = item.get("output", {})
                    self.finish("completed", "completed", output, Execution.output_data.set(output))
                    return
                elif kind == "error":
                    message = str(item.get("message", "The runtime reported an error."))
                    self.finish("failed", "error", {"message": message}, Execution.error_message.set(message))
                    return
                elif kind == "cancelled":
                    self.finish("stopped", "stopped", {"reason": "stop requested"})
                    return
        raise runtime_client.RuntimeFailure("The runtime's stream ended without a result.")

    def _watch_stop(self, done: threading.Event) -> None:
        """Poll the stop flag; once set, tell the runtime to cancel, and keep telling it until
        the stream ends, since a stop can land before the runtime has the run."""
        probe = Execution(self.execution_id)
        while not done.wait(STOP_POLL_SECONDS):
            if not probe.stop_requested:
                try:
                    probe.refresh(consistent_read=True)
                except DoesNotExist:
                    return
            if probe.stop_requested:
                runtime_client.cancel_generation(self.execution_id)


@cache
def _batch_processor() -> Any:
    # Imported on first use: the batch utility's imports would slow every API cold start.
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    return BatchProcessor(event_type=EventType.SQS)


def process_batch(event: dict[str, Any]) -> dict[str, Any]:
    """Powertools' partial batch response; when every record fails it raises, so SQS retries."""
    from aws_lambda_powertools.utilities.batch import process_partial_response

    try:
        return process_partial_response(event=event, record_handler=handle_record, processor=_batch_processor())
    finally:
        flush()


def handle_record(record: Any) -> None:
    """Powertools' record handler: one SQS record, one run. Raising leaves the message for retry."""
    message = json.loads(record.body)
    receives = int(record.attributes.approximate_receive_count or 1)
    execution_id = message["execution_id"]
    logger.set_correlation_id(record.message_id)
    logger.append_keys(execution_id=execution_id)
    try:
        run_execution(execution_id, receives)
    finally:
        logger.remove_keys(["execution_id"])


def run_execution(execution_id: str, receives: int) -> None:
    try:
        execution = Execution.get(execution_id, consistent_read=True)
    except DoesNotExist:
        logger.warning("run message for a missing execution; dropped")
        return
    if execution.status != "pending":
        logger.info("duplicate delivery or finished run; nothing to do", extra={"status": execution.status})
        return
    try:
        runtime_client.wait_until_ready(settings.runtime_attempts)
    except runtime_client.RuntimeUnavailable as err:
        if receives >= MAX_RECEIVES:
            message = f"{err} Gave up after {receives} deliveries."
            end(execution, "failed", "error", {"message": message}, Execution.error_message.set(message))
        raise
    if not transition(execution, "running"):
        logger.info("another delivery claimed the run", extra={"status": execution.status})
        return
    count("ExecutionsStarted")
    Run(execution).execute()


def sweep_stuck_executions() -> int:
    """Fail executions left running past their deadline (an executor that died mid-run)."""
    cutoff = now() - timedelta(seconds=settings.execution_deadline_seconds)
    swept = 0
    for key in Execution.by_status.query("running", Execution.created_at < iso(cutoff)):
        execution = Execution.get(key.execution_id, consistent_read=True)
        if execution.status in TERMINAL or (execution.started_at or "") >= iso(cutoff):
            continue
        message = f"The run passed its {settings.execution_deadline_seconds} s deadline."
        swept += end(execution, "failed", "error", {"message": message}, Execution.error_message.set(message))
    return swept
