"""The contract has one copy, its own package: neither the Lambda nor the runtime restates a value
of it, and the API and the runtime accept, refuse and default every run input alike."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import contract
from chalicelib import errors, validation
from chalicelib.errors import DynaveraError
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


# The two sides: the Lambda's code and the runtime's.
SIDES = [ROOT / "app.py", *sorted((ROOT / "chalicelib").glob("*.py")), *sorted((ROOT / "mcp_container").glob("*.py"))]


def _contract_constants() -> dict[str, Any]:
    return {name: value for name, value in vars(contract).items() if name.isupper() and not name.startswith("_")}


def _restated(path: Path) -> list[str]:
    """What `path` says again that the contract already says: a constant of the same name, a
    string the contract holds (an error code, a header, the prompt, a pattern), a number of it."""
    constants = _contract_constants()
    strings = {v for v in constants.values() if isinstance(v, str) and len(v) > 4} | set(contract.HTTP_STATUS)
    # The bounds of inputs: a coincidence (an hour is 3600 s) is not a restatement.
    numbers = {v for k, v in constants.items() if (k.startswith("MAX_") or k == "CONTEXT_TOKENS") and v >= 1000}
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) and node.body
        and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [f"{t.id} defined again" for t in targets if isinstance(t, ast.Name) and t.id in constants]
        elif isinstance(node, ast.Constant) and id(node) not in docstrings and _holds(node.value, strings, numbers):
            found.append(f"line {node.lineno}: {node.value!r}")
    return found


def _holds(value: Any, strings: set[str], numbers: set[int]) -> bool:
    return (isinstance(value, str) and value in strings) or (type(value) is int and value in numbers)


@pytest.mark.parametrize("path", SIDES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_neither_side_restates_a_value_of_the_contract(path: Path) -> None:
    assert _restated(path) == []


def test_the_restatement_check_catches_a_restated_code_bound_and_name(tmp_path: Path) -> None:
    side = tmp_path / "side.py"
    side.write_text('"""A side."""\nMAX_QUERY_CHARS = 10\nLIMIT = 4000\n\n\ndef f():\n    return "not_found"\n')
    assert _restated(side) == ["MAX_QUERY_CHARS defined again", "line 3: 4000", "line 7: 'not_found'"]


def test_there_is_one_contract_and_each_side_imports_it_as_its_own_package() -> None:
    assert not (ROOT / "chalicelib" / "contract.py").exists() and not (ROOT / "mcp_container" / "contract.py").exists()
    imported = {name.split(".")[0] for name in _imports(ROOT / "contract" / "__init__.py")}
    assert imported <= {"__future__", "json", "math", "re", "collections", "typing"}, "standard library only"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names} | {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    }


def test_every_error_class_answers_with_the_contracts_status_for_its_code() -> None:
    classes = [errors.Invalid, errors.InvalidJson, errors.TooLarge, errors.Unauthorized, errors.NotFound]
    classes += [errors.Conflict, errors.Unavailable, errors.DynaveraError]
    for cls in classes:
        assert cls("m").status == contract.HTTP_STATUS[cls.code]
    # A code of its own (unknown_action) keeps its class's status.
    assert errors.Invalid("m", contract.UNKNOWN_ACTION).status == 400


def _api_config(config: Any) -> tuple[str, Any]:
    try:
        return "ok", validation.agent_config(config, validation.AGENT_CONFIG_DEFAULTS)
    except DynaveraError as err:
        return err.code, None


def _as_run(stored: dict[str, Any]) -> AskConfig:
    """What the runtime runs a stored config with: the agent's collection is a name the executor
    resolves to `collection_id` (none here); the runtime searches by id only."""
    return AskConfig(**{k: v for k, v in stored.items() if k != "collection"})


def _runtime_config(config: Any) -> tuple[str, Any]:
    try:
        parsed = ExecuteRequest.parse({"query": "q", "config": config})
    except InvalidRequest as err:
        return err.code, None
    return "ok", parsed.config


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
    assert system.content == build_messages("q", [], None)[0].content == contract.DEFAULT_SYSTEM_PROMPT
