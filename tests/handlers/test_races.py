"""Races the conditional writes must win whatever the timing: one Idempotency-Key sent at once
from many requests, and one run message delivered twice at the same moment."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.handlers.conftest import Handlers

ANSWER = [{"type": "token", "text": "Hi"}, {"type": "result", "output": {"answer": "Hi", "sources": []}}]


def queued(h: Handlers, agent_id: str) -> list[dict[str, Any]]:
    """The messages on the runs queue for runs of this agent."""
    sqs, url = h.poller.sqs, h.poller.queue_url
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
    return [m for m in messages if json.loads(m["Body"])["agent_id"] == agent_id]


def test_one_idempotency_key_sent_at_once_starts_one_run_and_queues_one_message(h: Handlers) -> None:
    from chalicelib import runs

    user_id, key = h.user()
    agent_id = h.agent(key)
    body = {"input_data": {"query": "What is fNIRS?"}}
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _start(runs, user_id, agent_id, body), range(8)))
    started = {r for r in results if not r.startswith("conflict")}
    assert len(started) == 1, results
    assert len(queued(h, agent_id)) == 1
    # The key, sent again later, answers with the same run.
    again = h.rest("POST", f"/agents/{agent_id}/executions", key, body, **{"Idempotency-Key": "k-1"})
    assert (again.status_code, again.json_body["execution_id"]) == (202, started.pop())


def _start(runs: Any, user_id: str, agent_id: str, body: dict[str, Any]) -> str:
    from chalicelib.errors import Conflict

    try:
        return runs.start(user_id, agent_id, body, "k-1").execution_id
    except Conflict as err:  # "still in progress; retry": the first request has not written its run yet
        return f"conflict: {err.message}"


def test_one_message_delivered_twice_at_once_runs_once(h: Handlers) -> None:
    _, key = h.user()
    agent_id = h.agent(key)
    execution_id = h.start(key, agent_id)
    (message,) = queued(h, agent_id)
    h.runtime.play(*ANSWER)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: h.poller.invoke([message]), range(2)))
    assert h.execution(execution_id).status == "completed"
    assert [e.event_type for e in h.events(execution_id)] == ["started", "token", "completed"]
    assert len(h.runtime.requests) <= 2  # the loser may reach the runtime, but never writes
