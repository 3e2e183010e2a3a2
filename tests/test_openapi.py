"""The REST contract as OpenAPI 3.1: served without a key at GET /openapi.json, and every answer
of the local stack to schemathesis' generated requests matches it (no 5xx, documented statuses,
bodies in the documented shapes, every error as {"error": {code, message}})."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

import contract
from chalicelib import openapi
from local.stack import Stack
from tests.conftest import Api

schema = schemathesis.openapi.from_dict(openapi.document())


def test_health_and_the_document_are_served_without_a_key(rest_stack: Stack) -> None:
    assert httpx.get(f"{rest_stack.api_url}/health").json() == {"status": "ok"}
    answer = httpx.get(f"{rest_stack.api_url}/openapi.json")
    assert answer.status_code == 200 and answer.json() == openapi.document()


@pytest.fixture(scope="module")
def auth(alice: Api) -> dict[str, str]:
    # Something to find: an agent with a run, so that not every generated id answers 404.
    agent_id = alice.post("/agents", json={"name": "schema"}).json()["agent_id"]
    alice.post(f"/agents/{agent_id}/executions", json={"input_data": {"query": "q"}})
    return {"Authorization": alice.headers["Authorization"]}


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_matches_the_document(case: Any, rest_stack: Stack, auth: dict[str, str]) -> None:
    # A page token is opaque: only the API's own tokens are valid, and a collection name in an
    # agent's config must be one of the caller's own collections; no schema can say either.
    names_collection = isinstance(case.body, dict) and isinstance(case.body.get("config"), dict) and (
        case.body["config"].get("collection") is not None
    )
    excluded = [positive_data_acceptance] if "next_token" in (case.query or {}) or names_collection else []
    case.call_and_validate(base_url=rest_stack.api_url, headers=auth, excluded_checks=excluded)


def test_the_document_carries_the_contracts_bounds_codes_and_the_error_field() -> None:
    schemas = openapi.document()["components"]["schemas"]
    config = schemas["AgentConfig"]["properties"]
    for name, (low, high, default, _) in contract.NUMBERS.items():
        assert (config[name]["minimum"], config[name]["maximum"], config[name]["default"]) == (low, high, default)
    assert config["system_prompt"]["maxLength"] == contract.MAX_SYSTEM_PROMPT_CHARS
    assert config["collection"]["pattern"] == contract.COLLECTION_PATTERN
    query = schemas["NewExecution"]["properties"]["input_data"]["properties"]["query"]
    assert query["maxLength"] == contract.MAX_QUERY_CHARS
    error = schemas["Error"]["properties"]["error"]["properties"]
    assert set(error["code"]["enum"]) == set(contract.HTTP_STATUS) and error["field"]["type"] == "string"
