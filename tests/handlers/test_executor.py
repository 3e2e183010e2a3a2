"""The executor in-process: SQS records in through the poller, a scripted runtime, and the final
status and event log of every way a run can end (DESIGN §5)."""

from __future__ import annotations

import json
import math
import threading
from typing import Any

from tests.fixtures.scripted import HOLD
from tests.handlers.conftest import Handlers
from tests.live import wait_until

OUTPUT = {"answer": "fNIRS measures blood oxygenation.", "sources": [], "usage": {"completion_tokens": 4}}
ANSWER = [
    {"type": "progress", "stage": "retrieving", "message": "searching"},
    {"type": "token", "text": "fNIRS measures"},
    {"type": "token", "text": " blood oxygenation."},
    {"type": "result", "output": OUTPUT},
]


def started_run(h: Handlers) -> tuple[str, str, str]:
    """A user's key, a pending execution of theirs, and a connection following it."""
    _, key = h.user()
    agent_id = h.agent(key, max_tokens=64)
    connection_id = h.connect(key)
    frames = h.send(connection_id, {"action": "start_agent", "agent_id": agent_id, "input_data": {"query": "q"}})
    assert frames[0]["type"] == "execution_started"
    return key, frames[0]["execution_id"], connection_id


def log(h: Handlers, execution_id: str) -> list[str]:
    events = h.events(execution_id)
    assert [int(e.seq) for e in events] == list(range(1, len(events) + 1))
    return [e.event_type for e in events]


def frames_seen(h: Handlers, connection_id: str, execution_id: str) -> list[Any]:
    return [(f["seq"], f["type"]) for f in h.connections.of_execution(connection_id, execution_id)]


def test_a_run_completes_and_its_follower_sees_every_event_once_in_order(h: Handlers) -> None:
    _, execution_id, connection_id = started_run(h)
    h.runtime.play(*ANSWER)
    assert h.deliver() == 1
    execution = h.execution(execution_id)
    assert (execution.status, execution.output_data) == ("completed", OUTPUT)
    assert log(h, execution_id) == ["started", "progress", "token", "token", "completed"]
    seen = frames_seen(h, connection_id, execution_id)
    assert [seq for seq, _ in seen] == [1, 2, 3, 4, 5] and seen[-1][1] == "execution_completed"
    request = h.runtime.requests[0]
    assert request["body"]["execution_id"] == execution_id and request["headers"].get("X-Correlation-Id")


def test_a_malformed_stream_line_fails_the_run_with_an_error_event(h: Handlers) -> None:
    _, execution_id, connection_id = started_run(h)
    h.runtime.play(ANSWER[0], "{not json")
    h.deliver()
    execution = h.execution(execution_id)
    assert execution.status == "failed" and "malformed" in execution.error_message
    assert log(h, execution_id) == ["started", "progress", "error"]
    assert frames_seen(h, connection_id, execution_id)[-1] == (3, "execution_error")


def test_a_stream_that_ends_without_a_result_fails_the_run(h: Handlers) -> None:
    _, execution_id, _ = started_run(h)
    h.runtime.play(ANSWER[0], ANSWER[1])
    h.deliver()
    assert h.execution(execution_id).status == "failed"
    assert log(h, execution_id) == ["started", "progress", "token", "error"]


def test_a_runtime_error_event_fails_the_run_with_its_message(h: Handlers) -> None:
    _, execution_id, _ = started_run(h)
    h.runtime.play({"type": "error", "message": "collection 'x' does not exist"})
    h.deliver()
    execution = h.execution(execution_id)
    assert (execution.status, execution.error_message) == ("failed", "collection 'x' does not exist")
    assert log(h, execution_id) == ["started", "error"]


def test_a_runtime_500_fails_the_run_before_it_starts(h: Handlers) -> None:
    _, execution_id, connection_id = started_run(h)
    h.runtime.play(status=500)
    h.deliver()
    execution = h.execution(execution_id)
    assert execution.status == "failed" and "HTTP 500" in execution.error_message and execution.started_at is None
    assert log(h, execution_id) == ["error"]
    assert frames_seen(h, connection_id, execution_id) == [(1, "execution_error")]


def test_a_busy_runtime_leaves_the_run_pending_then_fails_it_past_the_attempts(h: Handlers) -> None:
    h.rewire(run_attempts=2, retry_base_seconds=1)
    _, execution_id, _ = started_run(h)
    h.runtime.play(status=429)
    assert h.deliver() == 1
    assert h.execution(execution_id).status == "pending" and log(h, execution_id) == []
    # The message went back to the queue with a short visibility timeout; the second try is the last.
    wait_until(h.deliver, 10, "the deferred message came back")
    execution = h.execution(execution_id)
    assert execution.status == "failed" and "tried 2 times" in execution.error_message
    assert log(h, execution_id) == ["error"]


def test_a_duplicate_delivery_neither_reruns_nor_duplicates_events(h: Handlers) -> None:
    _, execution_id, _ = started_run(h)
    message = h.poller.sqs.receive_message(QueueUrl=h.poller.queue_url, AttributeNames=["All"])["Messages"][0]
    h.runtime.play(*ANSWER)
    h.poller.invoke([message])
    h.poller.invoke([message])  # SQS delivers at least once
    assert h.execution(execution_id).status == "completed"
    assert log(h, execution_id) == ["started", "progress", "token", "token", "completed"]
    assert len(h.runtime.requests) == 1


def test_a_stop_of_a_pending_run_ends_it_before_it_reaches_the_runtime(h: Handlers) -> None:
    key, execution_id, connection_id = started_run(h)
    assert h.rest("POST", f"/executions/{execution_id}/stop", key).json_body["status"] == "stopped"
    h.runtime.play(*ANSWER)
    h.deliver()
    execution = h.execution(execution_id)
    assert execution.status == "stopped" and execution.started_at is None
    assert log(h, execution_id) == ["stopped"] and h.runtime.requests == []
    assert frames_seen(h, connection_id, execution_id) == [(1, "execution_stopped")]


def test_a_stop_mid_stream_closes_it_and_ends_the_run_stopped(h: Handlers) -> None:
    key, execution_id, connection_id = started_run(h)
    h.runtime.play(ANSWER[0], ANSWER[1], HOLD, ANSWER[3])
    delivery = threading.Thread(target=h.deliver)
    delivery.start()
    assert h.runtime.holding.wait(10)
    wait_until(lambda: len(h.events(execution_id)) == 3, 10, "the run wrote what the runtime sent")
    assert h.rest("POST", f"/executions/{execution_id}/stop", key).status_code == 202
    delivery.join(10)
    assert not delivery.is_alive()
    assert h.execution(execution_id).status == "stopped"
    assert log(h, execution_id) == ["started", "progress", "token", "stopped"]
    assert frames_seen(h, connection_id, execution_id)[-1] == (4, "execution_stopped")


def test_a_stop_racing_the_result_ends_the_run_exactly_once(h: Handlers) -> None:
    key, execution_id, _ = started_run(h)
    h.runtime.play(*ANSWER)
    h.deliver()
    answer = h.rest("POST", f"/executions/{execution_id}/stop", key)
    assert (answer.status_code, answer.json_body["error"]["code"]) == (409, "conflict")
    assert h.execution(execution_id).status == "completed"
    assert log(h, execution_id).count("completed") == 1 and "stopped" not in log(h, execution_id)


def test_the_sweeper_fails_a_run_left_running_past_its_deadline(h: Handlers) -> None:
    from chalicelib.models import Execution

    h.rewire(execution_deadline_seconds=1)
    _, execution_id, connection_id = started_run(h)
    h.execution(execution_id).update(
        actions=[Execution.status.set("running"), Execution.started_at.set("2026-01-01T00:00:01.000000Z")]
    )
    wait_until(lambda: h.sweep()["swept"], 10, "the sweeper swept the run")
    execution = h.execution(execution_id)
    assert execution.status == "failed" and "deadline" in execution.error_message
    assert log(h, execution_id) == ["error"]
    assert frames_seen(h, connection_id, execution_id) == [(1, "execution_error")]


def strict(raw: bytes | str) -> Any:
    """Parse as a browser's JSON.parse would: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} in an answer")

    return json.loads(raw, parse_constant=refuse)


def test_an_old_unsendable_input_reads_as_strict_json_and_fails_its_run_at_once(h: Handlers) -> None:
    from chalicelib.models import Execution

    key, execution_id, connection_id = started_run(h)
    # Stored before the API refused such input: a list holding it must stay readable.
    h.execution(execution_id).update(actions=[Execution.input_data.set({"query": "q", "f": math.inf, "g": [math.nan]})])
    one = strict(h.rest("GET", f"/executions/{execution_id}", key).body)
    assert one["input_data"] == {"query": "q", "f": None, "g": [None]}
    agent_id = one["agent_id"]
    listed = strict(h.rest("GET", f"/agents/{agent_id}/executions", key).body)["executions"]
    assert [e["input_data"]["f"] for e in listed] == [None]
    h.runtime.play(*ANSWER)
    assert h.deliver() == 1
    execution = h.execution(execution_id)
    assert execution.status == "failed" and "not strict JSON" in execution.error_message
    assert h.runtime.requests == [] and log(h, execution_id) == ["error"]
    assert frames_seen(h, connection_id, execution_id) == [(1, "execution_error")]
    # Nothing went back to the queue: no redelivery loop until the DLQ.
    assert h.deliver() == 0
