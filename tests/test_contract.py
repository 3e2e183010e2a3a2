"""The execution contract has one copy: the Lambda and the runtime install the same file, and
the API and the runtime accept, refuse and default every run input alike."""

from __future__ import annotations

import filecmp
from pathlib import Path
from typing import Any

import pytest

from chalicelib import contract as lambda_contract
from chalicelib import validation
from chalicelib.errors import DynaveraError
from mcp_container import contract as runtime_contract
from mcp_container.engine import AskConfig
from mcp_container.execution import ExecuteRequest, InvalidRequest
from mcp_container.prompt import build_messages

ROOT = Path(__file__).resolve().parent.parent

CONFIGS: list[Any] = [
    {},
    {"top_k": 1, "max_tokens": 2048, "temperature": 2},
    {"top_k": 0},
    {"top_k": 21},
    {"top_k": 2.5},
    {"top_k": 3.0},
    {"top_k": True},
    {"max_tokens": 0},
    {"max_tokens": 2049},
    {"temperature": -0.1},
    {"temperature": "hot"},
    {"collection": "ab"},
    {"collection": "a" * 63},
    {"collection": "a" * 64},
    {"collection": "-bad-"},
    {"collection": "my.docs_v2"},
    {"system_prompt": "Answer in French."},
    {"system_prompt": "x" * 4001},
    {"system_prompt": 7},
    {"colour": "blue"},
    [],
]
QUERIES: list[Any] = ["What is fNIRS?", "", "   ", 42, "q" * 4000, "q" * 4001]


def test_the_lambda_and_the_runtime_install_the_same_contract_file() -> None:
    assert filecmp.cmp(ROOT / "chalicelib" / "contract.py", ROOT / "mcp_container" / "contract.py", shallow=False)
    assert lambda_contract.default_config() == runtime_contract.default_config()


def _api_config(config: Any) -> tuple[str, Any]:
    try:
        return "ok", validation.agent_config(config, validation.AGENT_CONFIG_DEFAULTS)
    except DynaveraError as err:
        return err.code, None


def _runtime_config(config: Any) -> tuple[str, Any]:
    try:
        parsed = ExecuteRequest.parse({"query": "q", "config": config})
    except InvalidRequest as err:
        return err.code, None
    return "ok", parsed.config


def _as_run(stored: dict[str, Any]) -> AskConfig:
    """What the runtime runs a stored config with: the agent's collection is a name the executor
    resolves to `collection_id` (none here); the runtime searches by id only."""
    return AskConfig(**{k: v for k, v in stored.items() if k != "collection"})


@pytest.mark.parametrize("config", CONFIGS, ids=repr)
def test_api_and_runtime_agree_on_every_config(config: Any) -> None:
    api_code, stored = _api_config(config)
    runtime_code, asked = _runtime_config(config)
    assert api_code == runtime_code
    if stored is not None:
        # What the API stores is what the runtime then runs with.
        assert _runtime_config(stored) == ("ok", asked)
        assert _as_run(stored) == asked


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: repr(q)[:20])
def test_api_and_runtime_agree_on_every_query(query: Any) -> None:
    try:
        validation.input_data({"input_data": {"query": query}})
        api_code = "ok"
    except DynaveraError as err:
        api_code = err.code
    try:
        ExecuteRequest.parse({"query": query})
        runtime_code = "ok"
    except InvalidRequest as err:
        runtime_code = err.code
    assert api_code == runtime_code


def test_an_agent_without_config_runs_with_the_runtimes_defaults_and_prompt() -> None:
    _, stored = _api_config({})
    _, asked = _runtime_config(None)
    assert _as_run(stored) == asked
    system = build_messages("q", [], asked.system_prompt)[0]
    assert system.content == build_messages("q", [], None)[0].content == runtime_contract.DEFAULT_SYSTEM_PROMPT
