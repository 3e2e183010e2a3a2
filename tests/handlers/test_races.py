"""Races the conditional writes must win whatever the timing: one Idempotency-Key sent at once
from many requests, and one run message delivered twice at the same moment."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from functools import partial
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


def _status(call: Any) -> int:
    """The status the API answers a service call with: its error's, or `ok`'s."""
    from chalicelib.errors import DynaveraError

    try:
        call()
    except DynaveraError as err:
        return err.status
    return 0


def test_two_updates_and_two_deletes_of_one_agent_at_once_answer_200_409_204_404_never_500(h: Handlers) -> None:
    from chalicelib import agents

    user_id, key = h.user()
    for round_ in range(5):
        agent_id = h.agent(key)
        updates = [partial(agents.update, user_id, agent_id, {"config": {"top_k": n}}) for n in (1, 2)]
        deletes = [partial(agents.delete, user_id, agent_id)] * 2
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(_status, updates + deletes))
        updated = [status or 200 for status in statuses[:2]]
        deleted = sorted(status or 204 for status in statuses[2:])
        # An update that reads after a delete finds no agent: 404, as a GET would answer.
        assert set(updated) <= {200, 404, 409} and deleted == [204, 404], (round_, updated, deleted)
        assert h.rest("GET", f"/agents/{agent_id}", key).status_code == 404


def test_a_write_over_a_stale_read_is_a_conflict_and_a_delete_of_a_deleted_agent_not_found(
    h: Handlers, monkeypatch: Any
) -> None:
    """The lost halves of the races above, made certain: each write runs on a read taken before
    the other writer's."""
    from chalicelib import agents
    from chalicelib.models import Agent

    user_id, key = h.user()
    agent_id = h.agent(key)
    stale = Agent.get(agent_id)
    assert h.rest("PATCH", f"/agents/{agent_id}", key, {"config": {"top_k": 7}}).status_code == 200
    monkeypatch.setattr(agents, "get", lambda *_: stale)
    assert _status(lambda: agents.update(user_id, agent_id, {"config": {"max_tokens": 9}})) == 409
    assert Agent.get(agent_id, consistent_read=True).config["top_k"] == 7, "the first change kept"
    stale = Agent.get(agent_id)
    assert h.rest("DELETE", f"/agents/{agent_id}", key).status_code == 204
    assert _status(lambda: agents.delete(user_id, agent_id)) == 404
    assert _status(lambda: agents.update(user_id, agent_id, {"name": "back"})) == 409
    assert Agent.count(agent_id) == 0, "an update after a delete must not bring the agent back"


def test_only_models_turns_a_failed_condition_into_a_domain_error() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for path in [root / "app.py", *(root / "chalicelib").glob("*.py")]:
        text = path.read_text()
        if path.name != "models.py":
            assert "ConditionalCheckFailed" not in text and "WriteError" not in text, path
            assert not any(name in text for name in ("PutError", "UpdateError", "DeleteError")), path
