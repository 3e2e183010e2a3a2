"""GET /executions (the caller's runs across agents, filtered on the server) and the config an
execution keeps (its agent's at start, with the run's own overrides), through the gateway on moto."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import Api
from tests.test_rest_api import assert_error, new_agent


def start_with(api: Api, agent_id: str, query: str, config: dict[str, Any]) -> dict[str, Any]:
    """A run with its own settings; the execution as the API answered."""
    response = api.post(f"/agents/{agent_id}/executions", json={"input_data": {"query": query}, "config": config})
    assert response.status_code == 202, response.text
    return response.json()


def all_pages(api: Api, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    token = None
    while True:
        page = api.get("/executions", params={**params, **({"next_token": token} if token else {})})
        assert page.status_code == 200, page.text
        found += page.json()["executions"]
        token = page.json()["next_token"]
        if token is None:
            return found


@pytest.fixture(scope="module")
def runs(alice: Api) -> dict[str, Any]:
    """A fresh user's runs over two agents, one of them since stopped."""
    first, second = new_agent(alice), new_agent(alice)
    marker = uuid.uuid4().hex[:10]
    made = [
        alice.started(first["agent_id"], f"What is fNIRS? {marker}"),
        alice.started(second["agent_id"], f"How does HbO2 absorb light {marker.upper()}?"),
        alice.started(first["agent_id"], "Something else entirely"),
    ]
    assert alice.post(f"/executions/{made[0]}/stop").status_code == 202
    return {"first": first, "second": second, "marker": marker, "made": made}


def test_runs_across_agents_newest_first_and_paged(alice: Api, runs: dict[str, Any]) -> None:
    mine = set(runs["made"])
    listed = [e["execution_id"] for e in all_pages(alice, limit=1) if e["execution_id"] in mine]
    assert listed == list(reversed(runs["made"]))
    stamps = [e["created_at"] for e in all_pages(alice)]
    assert stamps == sorted(stamps, reverse=True)


def test_filters_run_on_the_server(alice: Api, runs: dict[str, Any]) -> None:
    first = runs["first"]["agent_id"]
    by_agent = all_pages(alice, agent_id=first)
    assert {e["agent_id"] for e in by_agent} == {first} and len(by_agent) == 2
    stopped = all_pages(alice, status="stopped", agent_id=first)
    assert [e["execution_id"] for e in stopped] == [runs["made"][0]]
    # q finds the text in the question whatever its case, across agents.
    found = all_pages(alice, q=runs["marker"].upper())
    assert {e["execution_id"] for e in found} == set(runs["made"][:2])
    page = alice.get("/executions", params={"q": runs["marker"], "limit": 1}).json()
    assert len(page["executions"]) == 1 and page["next_token"] is not None
    assert all_pages(alice, q=f"absent-{uuid.uuid4().hex}") == []


def test_runs_of_a_deleted_agent_stay_listed(alice: Api) -> None:
    agent = new_agent(alice)
    execution_id = alice.started(agent["agent_id"], "kept after the agent goes")
    assert alice.delete(f"/agents/{agent['agent_id']}").status_code == 204
    assert [e["execution_id"] for e in all_pages(alice, agent_id=agent["agent_id"])] == [execution_id]


def test_another_users_runs_are_never_listed(alice: Api, bob: Api, runs: dict[str, Any]) -> None:
    assert all_pages(bob, q=runs["marker"]) == []
    assert all_pages(bob, agent_id=runs["first"]["agent_id"]) == []


@pytest.mark.parametrize(
    "params",
    [
        {"status": "done"},
        {"status": ""},
        {"agent_id": "not-a-uuid"},
        {"q": ""},
        {"q": "   "},
        {"q": "x" * 4001},
        {"limit": "0"},
        {"limit": "101"},
        {"next_token": "!!"},
        {"sort": "asc"},
    ],
)
def test_bad_filters_are_refused(alice: Api, params: dict[str, str]) -> None:
    response = alice.get("/executions", params=params)
    assert_error(response, 400, "validation_error")
    assert response.json()["error"]["field"] == next(iter(params))


def test_a_run_keeps_the_config_it_ran_with(alice: Api) -> None:
    agent = new_agent(alice, config={"top_k": 3, "max_tokens": 100, "temperature": 0.5})
    plain = alice.get(f"/executions/{alice.started(agent['agent_id'], 'agent settings')}").json()
    assert plain["config"] == agent["config"]
    tuned = start_with(alice, agent["agent_id"], "own settings", {"top_k": 7, "temperature": 0})
    assert tuned["config"] == {**agent["config"], "top_k": 7, "temperature": 0}
    # A later change to the agent leaves the runs' records as they ran.
    alice.patch(f"/agents/{agent['agent_id']}", json={"config": {"max_tokens": 512}})
    assert alice.get(f"/executions/{plain['execution_id']}").json()["config"]["max_tokens"] == 100
    listed = alice.get(f"/agents/{agent['agent_id']}/executions").json()["executions"]
    assert {e["execution_id"]: e["config"]["top_k"] for e in listed} == {
        plain["execution_id"]: 3,
        tuned["execution_id"]: 7,
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"config": {"top_k": 0}}, "config.top_k"),
        ({"config": {"top_k": 21}}, "config.top_k"),
        ({"config": {"max_tokens": 2.5}}, "config.max_tokens"),
        ({"config": {"temperature": "hot"}}, "config.temperature"),
        ({"config": {"temperature": True}}, "config.temperature"),
        ({"config": {"collection": "other"}}, "config.collection"),
        ({"config": {"system_prompt": "be rude"}}, "config.system_prompt"),
        ({"config": []}, "config"),
        ({"config": None}, "config"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_run_overrides_are_refused_and_nothing_runs(alice: Api, body: dict[str, Any], field: str) -> None:
    agent = new_agent(alice)
    response = alice.post(f"/agents/{agent['agent_id']}/executions", json={"input_data": {"query": "q"}, **body})
    assert_error(response, 400, "validation_error")
    assert response.json()["error"]["field"] == field
    assert alice.get(f"/agents/{agent['agent_id']}/executions").json()["executions"] == []
