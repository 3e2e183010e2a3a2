"""The Lambda code's settings: read once from a mapping, a bad value named, wired by one call."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib.settings import ConfigError, Settings
from chalicelib.wiring import run_policy, wire


def test_names_follow_the_stage_unless_the_environment_names_them() -> None:
    settings = Settings.from_env({"DYNAVERA_STAGE": "qa", "EVENTS_TABLE": "custom-events"})
    assert (settings.agents_table, settings.events_table, settings.runs_queue_name) == (
        "dynavera-qa-agents",
        "custom-events",
        "dynavera-qa-runs",
    )
    assert settings.aws_endpoint_url is None and settings.local_credentials is None and not settings.tracing


@pytest.mark.parametrize(("name", "value"), [("RUN_ATTEMPTS", "three"), ("RETRY_BASE_SECONDS", "0")])
def test_a_bad_value_fails_naming_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_tracing_is_on_only_inside_lambda_unless_powertools_turns_it_off() -> None:
    assert Settings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "f"}).tracing
    assert not Settings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "f", "POWERTOOLS_TRACE_DISABLED": "true"}).tracing


@pytest.fixture
def rewired() -> Iterator[None]:
    import app

    yield
    wire(app.settings)


def test_one_wiring_step_points_every_model_and_client_at_the_settings(rewired: None) -> None:
    from chalicelib import aws, executor, runtime_client, websocket
    from chalicelib.models import TABLES

    settings = Settings.from_env(
        {
            "DYNAVERA_STAGE": "bound",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "MCP_AGENT_URL": "http://runtime:1/",
            "RUN_ATTEMPTS": "3",
            "WEBSOCKET_ENDPOINT": "http://127.0.0.1:10",
        }
    )
    wire(settings)
    for model, field in TABLES.items():
        assert (model.Meta.table_name, model.Meta.host) == (getattr(settings, field), "http://127.0.0.1:9")
    assert aws.sqs().meta.endpoint_url == "http://127.0.0.1:9"
    assert str(runtime_client._client().base_url) == "http://runtime:1"
    assert run_policy(settings).run_attempts == 3 and executor.RunPolicy().run_attempts != 3
    assert websocket.management_endpoint("abc.example", "api") == "http://127.0.0.1:10"


def test_settings_is_a_leaf_and_only_it_reads_the_environment() -> None:
    import ast
    from pathlib import Path

    for path in Path("chalicelib").glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        } | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        if path.name == "settings.py":
            assert not [name for name in names if name.startswith("chalicelib")], names
        else:
            assert "os" not in names, f"{path} imports os: settings.py alone reads the environment"


def test_a_stage_sets_its_own_limits_and_a_bad_one_is_named() -> None:
    from chalicelib.limits import Limits
    from chalicelib.wiring import limits

    stage = limits(Settings.from_env({"DYNAVERA_LIMIT_AGENTS": "5", "DYNAVERA_LIMIT_REQUESTS_PER_WINDOW": "600"}))
    assert (stage.agents, stage.requests_per_window, stage.connections) == (5, 600, Limits().connections)
    with pytest.raises(ConfigError, match="DYNAVERA_LIMIT_AGENTS"):
        Settings.from_env({"DYNAVERA_LIMIT_AGENTS": "0"})
    with pytest.raises(ConfigError, match="DYNAVERA_LIMIT_AGENT: no such limit"):
        limits(Settings.from_env({"DYNAVERA_LIMIT_AGENT": "5"}))


def test_the_documents_bucket_is_taken_whole_never_derived_from_the_stage(rewired: None) -> None:
    # Its name carries the account id, which the Lambda does not know: only the deploy can say it.
    named = Settings.from_env({"DYNAVERA_STAGE": "qa", "DOCUMENTS_BUCKET": "dynavera-qa-documents-123456789012"})
    assert named.documents_bucket == "dynavera-qa-documents-123456789012"
    unnamed = Settings.from_env({"DYNAVERA_STAGE": "qa"})
    assert unnamed.documents_bucket is None
    from chalicelib import documents
    from chalicelib.models import Document

    wire(unnamed)
    document = Document(collection_id="c", document_id="d", user_id="u", size=10)
    with pytest.raises(ConfigError, match="DOCUMENTS_BUCKET is not set"):
        documents.presign(document)
