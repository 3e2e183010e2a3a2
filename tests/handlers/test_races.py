"""Races the conditional writes must win whatever the timing: one Idempotency-Key sent at once
from many requests, and one run message delivered twice at the same moment."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest

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


def test_an_agent_written_during_its_collections_delete_wins_or_loses_whole(
    h: Handlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both orders, each at the worst moment: an agent naming the collection is written after
    the delete has looked for agents, or the collection is deleted after the agent's write has
    looked for it. Either the delete is refused `in_use`, naming the agent, or the agent is
    refused; never an agent naming a deleted collection."""
    from chalicelib import collections

    _, key = h.user()
    papers = h.rest("POST", "/collections", key, {"name": "papers"}).json_body
    looked_for_agents = collections._agents_naming
    late: list[str] = []

    def agent_arrives_after_the_look(collection: Any, claim: Any) -> Any:
        found = looked_for_agents(collection, claim)
        if not late:
            late.append(h.agent(key, collection="papers"))
        return found

    monkeypatch.setattr(collections, "_agents_naming", agent_arrives_after_the_look)
    refused = h.rest("DELETE", f"/collections/{papers['collection_id']}", key)
    assert (refused.status_code, refused.json_body["error"]["code"]) == (409, "in_use"), refused.json_body
    assert late[0] in refused.json_body["error"]["message"]
    assert h.rest("GET", f"/collections/{papers['collection_id']}", key).json_body["status"] == "active"
    monkeypatch.undo()

    # The other order: the collection goes between the agent's check and its write.
    notes = h.rest("POST", "/collections", key, {"name": "notes"}).json_body
    checked = collections.check_agent_collection

    def delete_after_the_check(user_id: str, config: dict[str, Any]) -> None:
        checked(user_id, config)
        gone = h.rest("DELETE", f"/collections/{notes['collection_id']}", key)
        assert gone.status_code == 202, gone.json_body

    monkeypatch.setattr(collections, "check_agent_collection", delete_after_the_check)
    created = h.rest("POST", "/agents", key, {"name": "late", "config": {"collection": "notes"}})
    assert (created.status_code, created.json_body["error"]["field"]) == (400, "config.collection"), created.body
    other = h.agent(key)
    moved = h.rest("PATCH", f"/agents/{other}", key, {"config": {"collection": "notes"}})
    assert (moved.status_code, moved.json_body["error"]["field"]) == (400, "config.collection"), moved.body
    monkeypatch.undo()
    agents = h.rest("GET", "/agents", key).json_body["agents"]
    assert {a["name"] for a in agents} == {"helper"} and all(a["config"]["collection"] != "notes" for a in agents)
    assert len(agents) == 2  # the late agent's slot was given back: only the two helpers exist


def test_a_collection_is_free_to_delete_once_its_agents_moved_away_or_were_deleted(h: Handlers) -> None:
    _, key = h.user()
    first = h.rest("POST", "/collections", key, {"name": "first"}).json_body
    second = h.rest("POST", "/collections", key, {"name": "second"}).json_body
    moving, leaving = h.agent(key, collection="first"), h.agent(key, collection="first")
    assert h.rest("DELETE", f"/collections/{first['collection_id']}", key).status_code == 409
    assert h.rest("PATCH", f"/agents/{moving}", key, {"config": {"collection": "second"}}).status_code == 200
    assert h.rest("DELETE", f"/agents/{leaving}", key).status_code == 204
    assert h.rest("DELETE", f"/collections/{first['collection_id']}", key).status_code == 202
    # The moved agent is now what holds the second one.
    held = h.rest("DELETE", f"/collections/{second['collection_id']}", key)
    assert (held.status_code, held.json_body["error"]["code"]) == (409, "in_use") and moving in held.json_body[
        "error"
    ]["message"]
    assert h.rest("PATCH", f"/agents/{moving}", key, {"config": {"collection": None}}).status_code == 200
    assert h.rest("DELETE", f"/collections/{second['collection_id']}", key).status_code == 202


def test_agents_written_before_claims_recorded_them_still_hold_their_collection(h: Handlers) -> None:
    from chalicelib.models import CollectionName

    user_id, key = h.user()
    kept = h.rest("POST", "/collections", key, {"name": "kept"}).json_body
    agent_id = h.agent(key, collection="kept")
    # As a stage's data from before: the claim records no agent.
    CollectionName.get(user_id, CollectionName.claim_of("kept")).update(actions=[CollectionName.agents.remove()])
    refused = h.rest("DELETE", f"/collections/{kept['collection_id']}", key)
    assert (refused.status_code, refused.json_body["error"]["code"]) == (409, "in_use")
    assert agent_id in refused.json_body["error"]["message"]
    assert h.rest("DELETE", f"/agents/{agent_id}", key).status_code == 204
    assert h.rest("DELETE", f"/collections/{kept['collection_id']}", key).status_code == 202
