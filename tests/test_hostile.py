"""Regressions for the hostile-input findings the fuzzers do not reach by chance (DESIGN §3):
composite keys that cannot collide, and sizes counted in UTF-8 against the model's context."""

from __future__ import annotations

import uuid

import contract
from local.stack import Stack
from tests.conftest import Api, create_key


def user(stack: Stack, user_id: str) -> tuple[Api, str]:
    api = Api(stack, create_key(stack, user_id))
    return api, api.post("/agents", json={"name": "h"}).json()["agent_id"]


def test_idempotency_keys_of_two_users_never_collide_whatever_their_ids(rest_stack: Stack) -> None:
    base = f"al{uuid.uuid4().hex[:6]}"
    first, first_agent = user(rest_stack, base)
    second, second_agent = user(rest_stack, f"{base}#ice")
    one = first.start(first_agent, "hi", **{"Idempotency-Key": "ice#X"})
    two = second.start(second_agent, "hi", **{"Idempotency-Key": "X"})
    assert (one.status_code, two.status_code) == (202, 202), (one.text, two.text)
    assert one.json()["execution_id"] != two.json()["execution_id"]
    again = second.start(second_agent, "hi", **{"Idempotency-Key": "X"})
    assert again.json()["execution_id"] == two.json()["execution_id"]


def test_a_query_that_might_not_fit_the_models_context_is_refused_at_start(rest_stack: Stack) -> None:
    api, agent_id = user(rest_stack, f"ctx-{uuid.uuid4().hex[:6]}")
    refused = api.start(agent_id, "🧠" * 4000)  # 16 KB of UTF-8: under the 32 KiB input limit
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "too_large" and "context" in refused.json()["error"]["message"]
    fits = contract.CONTEXT_TOKENS - contract.TEMPLATE_ALLOWANCE - len(contract.DEFAULT_SYSTEM_PROMPT.encode())
    assert api.start(agent_id, "🧠" * (fits // 4)).status_code == 202
    assert api.start(agent_id, "q" * contract.MAX_QUERY_CHARS).status_code == 202
