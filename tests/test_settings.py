"""The Lambda code's settings: read once from a mapping, a bad value named, bound by one call."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib.settings import ConfigError, Settings, bind, current


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
def rebound() -> Iterator[None]:
    import app  # noqa: F401 - binds the settings of this process's environment, as in Lambda

    before = current()
    yield
    bind(before)


def test_one_bind_points_every_model_and_client_at_the_settings(rebound: None) -> None:
    from chalicelib import aws
    from chalicelib.models import TABLES

    settings = Settings.from_env(
        {"DYNAVERA_STAGE": "bound", "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "MCP_AGENT_URL": "http://runtime:1/"}
    )
    bind(settings)
    for model, field in TABLES.items():
        assert (model.Meta.table_name, model.Meta.host) == (getattr(settings, field), "http://127.0.0.1:9")
    assert aws.sqs().meta.endpoint_url == "http://127.0.0.1:9"
    assert current().mcp_agent_url == "http://runtime:1"
