"""The executor: one run message in, the runtime's stream out to the event log and subscribers.

SQS delivers at least once, so the claim pending → running is a conditional update: a
duplicate delivery, or a run already stopped, does nothing. The claim waits for the runtime's
first event: a runtime that is busy, loading or unreachable leaves the run pending, and its
message goes back to the queue after a backoff, so a burst queues instead of failing. Every
event goes through the run's delivery Sender (chalicelib/delivery.py), which gives it its seq
and is the only sender to its subscribers while the run is live.
"""

from __future__ import annotations

import itertools
import json
import queue
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib import aws, capacity, collections, runtime_client
from chalicelib.clock import iso, now
from chalicelib.delivery import Sender
from chalicelib.errors import Conflict
from chalicelib.models import Execution
from chalicelib.runs import TERMINAL_EVENTS, conclude, end, transition
from chalicelib.telemetry import count, logger, start_thread


@dataclass(frozen=True)
class RunPolicy:
    """How often a run is tried and how long it may take; a stage or a test may change them."""

    run_attempts: int = capacity.RUN_ATTEMPTS
    retry_base_seconds: int = capacity.RETRY_BASE_SECONDS
    pending_deadline_seconds: int = capacity.PENDING_DEADLINE_SECONDS
    execution_deadline_seconds: int = capacity.RUNNING_DEADLINE_SECONDS


_policy = RunPolicy()


def configure(policy: RunPolicy) -> None:
    global _policy
    _policy = policy


class RunDeferred(Exception):
    """The run waits for the runtime: its message stays on the queue, visible again later."""


# How often a live run reads its stop flag and looks for new subscribers; less often while it
# waits its turn in the runtime, so a burst's waiting runs leave the CPU to the generating one.
WATCH_SECONDS = 0.4
WAITING_WATCH_SECONDS = 1.0


# Token frames are bounded by time (DESIGN §5.3): the first piece at once, then what has
# arrived at most every FRAME_SECONDS, so a run costs at most ~10 writes per second of generation
# and the answer moves like a chat at any model speed; a long wait is written sooner.
FRAME_SECONDS = 0.1
FRAME_CHARS = 2000


class TokenCoalescer:
    """Token text joined into frames by time: the first piece is due at once, later text once
    FRAME_SECONDS have passed since the last write, or at once when FRAME_CHARS wait."""

    def __init__(self, interval: float = FRAME_SECONDS, max_chars: int = FRAME_CHARS) -> None:
        self.interval = interval
        self.max_chars = max_chars
        self.text = ""
        self.last_flush: float | None = None

    def add(self, text: str) -> str | None:
        """Buffer one token's text; return what should be written now, if anything."""
        self.text += text
        if self.due_in() == 0 or len(self.text) >= self.max_chars:
            return self.drain()
        return None

    def due_in(self) -> float | None:
        """Seconds until the waiting text is due; None when nothing waits."""
        if not self.text:
            return None
        if self.last_flush is None:
            return 0
        return max(0.0, self.last_flush + self.interval - time.monotonic())

    def drain(self) -> str | None:
        """Everything that waits, to be written now (before any other event of the run)."""
        text, self.text = self.text, ""
        if text:
            self.last_flush = time.monotonic()
        return text or None


_END_OF_STREAM = object()


def _read_into(events: Iterator[dict[str, Any]], inbox: queue.Queue[Any]) -> None:
    """Move the runtime's events into `inbox`, so the writer can wake on a frame's deadline
    while the read blocks; a failure or the end of the stream goes in last."""
    try:
        for item in events:
            inbox.put(item)
        inbox.put(_END_OF_STREAM)
    except Exception as err:  # noqa: BLE001 - handed to the writer, which raises it
        inbox.put(err)


class Run:
    """One execution's pass through the runtime, and the sender of its events."""

    def __init__(self, execution: Execution) -> None:
        self.execution = execution
        self.execution_id = execution.execution_id
        # Only a claimed run writes its log, and only one delivery can claim it: the log is empty.
        self.sender = Sender(self.execution_id)
        self.stopping = False
        self.waiting = False  # the runtime said the run waits behind another

    def emit(self, event_type: str, content: dict[str, Any]) -> None:
        self.sender.append(event_type, content)

    def finish(self, status: str, detail: Any) -> None:
        content = conclude(self.execution, status, detail)
        if content is not None:
            self.sender.end(TERMINAL_EVENTS[status], content)

    def fail(self, message: str) -> None:
        self.finish("failed", message)

    def execute(self) -> None:
        """Run it; RuntimeBusy (the run still pending) when the runtime could not take it."""
        payload = self._payload()
        if payload is None:
            return
        try:
            with runtime_client.open_run(payload) as stream:
                events = iter(stream)
                try:
                    first = next(events)
                except (runtime_client.RuntimeFailure, StopIteration) as err:
                    raise runtime_client.RuntimeBusy("The runtime dropped the run before it began.") from err
                if not transition(self.execution, "running"):
                    # Leaving the block closes the stream, which frees the runtime's job.
                    logger.info(
                        "another delivery claimed the run, or it was stopped", extra={"status": self.execution.status}
                    )
                    return
                count("ExecutionsStarted")
                self._follow(stream, itertools.chain([first], events))
        except runtime_client.RuntimeBusy:
            raise
        except runtime_client.RuntimeFailure as err:
            self.fail(str(err))  # refused for good before it began: pending → failed

    def _follow(self, stream: runtime_client.RunStream, events: Iterator[dict[str, Any]]) -> None:
        done = threading.Event()
        start_thread(self._watch, stream, done)
        try:
            self.emit("started", {"agent_id": self.execution.agent_id})
            self._consume(events)
        except runtime_client.RuntimeFailure as err:
            if self.stopping:
                self.finish("stopped", "stop requested")
            else:
                self.fail(str(err))
        except Conflict:
            logger.warning("the run was ended elsewhere (its deadline passed); this executor stops writing")
        except Exception:
            # Never leave a claimed run "running": a redelivery would not take it up again.
            logger.exception("the run failed inside the executor")
            self.fail("The run failed inside the platform; see the executor's logs.")
            raise
        finally:
            done.set()

    def _payload(self) -> dict[str, Any] | None:
        """The /execute body, with the agent's collection name resolved to its id (the runtime
        never sees names); None, and the run failed, when that collection is gone."""
        config = self.execution.config
        name = config.get("collection")
        collection_id = collections.find_id(self.execution.user_id, name) if name is not None else None
        if name is not None and collection_id is None:
            self.fail(
                f"The agent's collection {name!r} no longer exists (it was deleted); "
                "point the agent at another of your collections, or at none."
            )
            return None
        return {
            "execution_id": self.execution_id,
            "agent_id": self.execution.agent_id,
            "query": self.execution.input_data["query"],
            "input_data": self.execution.input_data,
            "config": {**config, "collection_id": collection_id},
        }

    def _consume(self, events: Iterator[dict[str, Any]]) -> None:
        tokens = TokenCoalescer()
        inbox: queue.Queue[Any] = queue.Queue()
        start_thread(_read_into, events, inbox)
        while True:
            try:
                item = inbox.get(timeout=tokens.due_in())
            except queue.Empty:
                self._emit_text(tokens.drain())  # the frame's time came while the model was quiet
                continue
            if isinstance(item, Exception) or item is _END_OF_STREAM:
                self._emit_text(tokens.drain())  # the text that came stays in the log, stopped or not
                if item is _END_OF_STREAM:
                    raise runtime_client.RuntimeFailure("The runtime's stream ended without a result.")
                raise item
            kind = item.get("type")
            self.waiting = kind == "progress" and item.get("stage") == "queued"
            if kind == "token":
                self._emit_text(tokens.add(str(item.get("text", ""))))
                continue
            self._emit_text(tokens.drain())
            if kind == "progress":
                self.emit("progress", {"stage": item.get("stage"), "message": item.get("message")})
            elif kind == "result":
                self.finish("completed", item.get("output", {}))
                return
            elif kind == "error":
                self.fail(str(item.get("message", "The runtime reported an error.")))
                return
            elif kind == "cancelled":
                self.finish("stopped", "stop requested")
                return

    def _emit_text(self, text: str | None) -> None:
        if text:
            self.emit("token", {"text": text})

    def _watch(self, stream: runtime_client.RunStream, done: threading.Event) -> None:
        """While the run is live: hand new subscribers their missing events, and on a stop
        request close the stream (the runtime stops the generation when its client goes)."""
        probe = Execution(self.execution_id)
        while not done.wait(WAITING_WATCH_SECONDS if self.waiting else WATCH_SECONDS):
            try:
                if not probe.stop_requested:
                    probe.refresh(consistent_read=True)
                self.sender.refresh()
            except DoesNotExist:
                return
            except Exception:  # noqa: BLE001 - the next tick tries again; the run goes on meanwhile
                logger.exception("watching the run failed")
                continue
            if probe.stop_requested and not self.stopping:
                self.stopping = True
                logger.info("stop requested; closing the runtime stream")
                stream.close()


@cache
def _batch_processor() -> Any:
    # Imported on first use: the batch utility's imports would slow every API cold start.
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    return BatchProcessor(event_type=EventType.SQS)


def process_batch(event: dict[str, Any]) -> dict[str, Any]:
    """Powertools' partial batch response; when every record fails it raises, so SQS retries."""
    from aws_lambda_powertools.utilities.batch import process_partial_response

    return process_partial_response(event=event, record_handler=handle_record, processor=_batch_processor())


def handle_record(record: Any) -> None:
    """Powertools' record handler: one SQS record, one run. Raising leaves the message for retry."""
    message = json.loads(record.body)
    receives = int(record.attributes.approximate_receive_count or 1)
    execution_id = message["execution_id"]
    logger.thread_safe_append_keys(execution_id=execution_id)
    try:
        run_execution(execution_id, receives, record.receipt_handle)
    finally:
        logger.thread_safe_remove_keys(["execution_id"])


def run_execution(execution_id: str, receives: int, receipt_handle: str) -> None:
    try:
        execution = Execution.get(execution_id, consistent_read=True)
    except DoesNotExist:
        logger.warning("run message for a missing execution; dropped")
        return
    if execution.status != "pending":
        logger.info("duplicate delivery or finished run; nothing to do", extra={"status": execution.status})
        return
    try:
        Run(execution).execute()
    except runtime_client.RuntimeBusy as err:
        if receives >= _policy.run_attempts:
            message = f"{err} The run was tried {receives} times and could not start; try again later."
            end(execution, "failed", message)
            return
        delay = retry_delay(receives, _policy.retry_base_seconds)
        logger.info("the runtime cannot take the run now; it waits", extra={"reason": str(err), "retry_in": delay})
        count("RunsDeferred")
        aws.sqs().change_message_visibility(
            QueueUrl=aws.runs_queue_url(), ReceiptHandle=receipt_handle, VisibilityTimeout=delay
        )
        # Failing the record is how SQS is told to keep the message; the cause is logged above.
        raise RunDeferred(f"{err} Retry in {delay} s.") from None


def retry_delay(receives: int, base: int) -> int:
    """Seconds before the next attempt: doubling from `base`, capped, with some jitter so a
    burst that met a busy runtime does not come back all at once."""
    delay = min(capacity.RETRY_CAP_SECONDS, base * 2 ** (receives - 1))
    return delay + random.randint(0, delay // 2)


def sweep_stuck_executions() -> int:
    """Fail executions left pending (their message dead-lettered) or running (their executor
    lost) past their deadline."""
    swept = 0
    for status, deadline, started in (
        ("pending", _policy.pending_deadline_seconds, "created_at"),
        ("running", _policy.execution_deadline_seconds, "started_at"),
    ):
        cutoff = iso(now() - timedelta(seconds=deadline))
        for key in Execution.by_status.query(status, Execution.created_at < cutoff):
            execution = Execution.get(key.execution_id, consistent_read=True)
            if execution.status != status or (getattr(execution, started) or "") >= cutoff:
                continue
            message = f"The run was still {status} after {deadline} s, past its deadline; it was stopped as failed."
            swept += end(execution, "failed", message)
    return swept
