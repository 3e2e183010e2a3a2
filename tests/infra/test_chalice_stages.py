""".chalice/: each stage names its own tables and queue and holds nothing per account; `chalice
package --merge-template` (deploy/app_template.py) turns it into the REST API, the WebSocket API
and the executor, with the runtime stack's outputs as parameters."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra.conftest import ROOT, chalice_config, substitute, template

STAGES = sorted(chalice_config()["stages"])
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
# Settings field → the environment variable it reads (chalicelib/settings.py).
TABLE_VARIABLES = {
    "AgentsTable": "AGENTS_TABLE",
    "ExecutionsTable": "EXECUTIONS_TABLE",
    "EventsTable": "EVENTS_TABLE",
    "ConnectionsTable": "CONNECTIONS_TABLE",
    "SubscriptionsTable": "SUBSCRIPTIONS_TABLE",
    "ApiKeysTable": "API_KEYS_TABLE",
    "IdempotencyTable": "IDEMPOTENCY_TABLE",
    "UsageTable": "USAGE_TABLE",
    "CollectionsTable": "COLLECTIONS_TABLE",
    "DocumentsTable": "DOCUMENTS_TABLE",
}


def test_there_are_dev_and_prod_stages_with_hand_written_policies() -> None:
    assert {"dev", "prod"} <= set(STAGES)
    for name in STAGES:
        stage = chalice_config()["stages"][name]
        assert stage["autogen_policy"] is False
        assert stage["iam_policy_file"] == f"policy-{name}.json"
        assert (ROOT / ".chalice" / stage["iam_policy_file"]).is_file()


@pytest.mark.parametrize("name", STAGES)
def test_stage_environment_names_the_tables_and_queue_the_data_stack_makes(name: str) -> None:
    env = chalice_config()["stages"][name]["environment_variables"]
    resources = template("data.yaml")["Resources"]
    assert env["DYNAVERA_STAGE"] == name
    for logical_id, variable in TABLE_VARIABLES.items():
        assert env[variable] == substitute(resources[logical_id]["Properties"]["TableName"], {"Stage": name})
    assert env["RUNS_QUEUE_NAME"] == substitute(resources["RunsQueue"]["Properties"]["QueueName"], {"Stage": name})
    assert env["INGEST_QUEUE_NAME"] == substitute(resources["IngestQueue"]["Properties"]["QueueName"], {"Stage": name})


def test_settings_read_no_table_variable_the_stages_leave_out() -> None:
    source = (ROOT / "chalicelib" / "settings.py").read_text()
    read = set(re.findall(r'name\("([A-Z_]+)"', source))
    assert read, "chalicelib/settings.py no longer reads table names through name(...)"
    for name in STAGES:
        assert read <= set(chalice_config()["stages"][name]["environment_variables"]), name


@pytest.mark.parametrize("name", STAGES)
def test_stage_config_holds_no_placeholder_and_nothing_per_account(name: str) -> None:
    # Placeholders to edit by hand meant no script or CI could deploy; the runtime stack's
    # outputs reach the executor as parameters of the app's stack instead.
    stage = chalice_config()["stages"][name]
    assert not PLACEHOLDER.findall(json.dumps(stage))
    for function in stage.get("lambda_functions", {}).values():
        assert not {"subnet_ids", "security_group_ids"} & set(function)
    assert "MCP_AGENT_URL" not in stage["environment_variables"]
    # The documents bucket's name carries the account id: the deploy passes the data stack's.
    assert "DOCUMENTS_BUCKET" not in stage["environment_variables"]


@pytest.mark.parametrize("name", STAGES)
def test_executor_reserves_no_concurrency_and_fits_the_queues_visibility_window(name: str) -> None:
    stage = chalice_config()["stages"][name]
    executor = stage["lambda_functions"]["run_executions"]
    assert (
        executor["lambda_timeout"] * 6 <= template("data.yaml")["Parameters"]["RunsVisibilityTimeoutSeconds"]["Default"]
    )
    # A reservation fails on accounts whose unreserved concurrency is under 100 + it (new
    # accounts often have 10 in all); the cap is the SQS event source's maximum_concurrency.
    assert "reserved_concurrency" not in executor and "reserved_concurrency" not in stage
    # The WebSocket API's stage is this name; the policy's @connections ARN is scoped by it.
    assert stage["api_gateway_stage"] == name


def test_log_retention_is_a_stage_setting_of_30_days_by_default() -> None:
    config = chalice_config()
    assert config["log_retention_in_days"] == 30
    for name in STAGES:
        assert config["stages"][name].get("log_retention_in_days", config["log_retention_in_days"]) in (
            1,
            3,
            5,
            7,
            14,
            30,
            60,
            90,
            180,
            365,
        )


def test_package_holds_the_rest_api_with_every_route_of_the_app(packaged_dev: dict[str, Any]) -> None:
    import app as app_module

    resources = packaged_dev["Resources"]
    (rest,) = [r for r in resources.values() if r["Type"] == "AWS::Serverless::Api"]
    assert rest["Properties"]["StageName"] == "dev"
    paths = rest["Properties"]["DefinitionBody"]["paths"]
    for path, entries in app_module.app.routes.items():
        assert {m.lower() for m in entries} <= set(paths[path]), path


def test_package_holds_the_websocket_api_with_its_three_routes(packaged_dev: dict[str, Any]) -> None:
    resources = packaged_dev["Resources"]
    (api,) = [r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
    assert api["Properties"]["ProtocolType"] == "WEBSOCKET"
    integrations = {name: r for name, r in resources.items() if r["Type"] == "AWS::ApiGatewayV2::Integration"}
    routes = {}
    for resource in resources.values():
        if resource["Type"] == "AWS::ApiGatewayV2::Route":
            integration = resource["Properties"]["Target"]["Fn::Join"][1][-1]["Ref"]
            _, functions = integrations[integration]["Properties"]["IntegrationUri"]["Fn::Sub"]
            routes[resource["Properties"]["RouteKey"]] = functions["WebsocketHandler"]["Ref"]
    handlers = {
        name: resource["Properties"]["Handler"]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert {key: handlers[function] for key, function in routes.items()} == {
        "$connect": "app.ws_connect",
        "$default": "app.ws_message",
        "$disconnect": "app.ws_disconnect",
    }
    (stage,) = [r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    assert stage["Properties"]["StageName"] == "dev"


def test_package_feeds_the_executor_one_message_at_a_time_from_the_runs_queue(packaged_dev: dict[str, Any]) -> None:
    executor = packaged_dev["Resources"]["RunExecutions"]["Properties"]
    (source,) = executor["Events"].values()
    assert source["Type"] == "SQS"
    # batch_size=1 because Chalice cannot turn on ReportBatchItemFailures (DESIGN §5).
    assert source["Properties"]["BatchSize"] == 1
    queue = chalice_config()["stages"]["dev"]["environment_variables"]["RUNS_QUEUE_NAME"]
    assert source["Properties"]["Queue"]["Fn::Sub"].endswith(f":{queue}")
    assert (
        executor["Timeout"] == chalice_config()["stages"]["dev"]["lambda_functions"]["run_executions"]["lambda_timeout"]
    )
    assert executor["VpcConfig"] == {
        "SubnetIds": {"Ref": "LambdaSubnetIds"},
        "SecurityGroupIds": [{"Ref": "LambdaSecurityGroupId"}],
    }
    assert "ReservedConcurrentExecutions" not in executor


def test_every_packaged_function_has_a_log_group_with_the_stages_retention(packaged_dev: dict[str, Any]) -> None:
    resources = packaged_dev["Resources"]
    groups = {
        r["Properties"]["LogGroupName"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Logs::LogGroup"
    }
    functions = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Serverless::Function"]
    assert len(functions) == 7
    for function in functions:
        group = groups[f"/aws/lambda/{function['FunctionName']}"]
        assert group["RetentionInDays"] == chalice_config()["log_retention_in_days"]


def test_package_schedules_the_sweeper(packaged_dev: dict[str, Any]) -> None:
    (event,) = packaged_dev["Resources"]["SweepStuckExecutions"]["Properties"]["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == "rate(5 minutes)"


def test_every_packaged_function_role_carries_the_hand_written_stage_policy(packaged_dev: dict[str, Any]) -> None:
    policy = json.loads((ROOT / ".chalice" / "policy-dev.json").read_text())
    roles = [r for r in packaged_dev["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    functions = [r for r in packaged_dev["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    assert len(roles) == len(functions)
    for role in roles:
        (inline,) = role["Properties"]["Policies"]
        assert inline["PolicyDocument"] == policy


def test_every_function_is_traced_with_x_ray(packaged_dev: dict[str, Any]) -> None:
    assert all(stage.get("xray") is True for stage in chalice_config()["stages"].values())
    functions = [r for r in packaged_dev["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    assert functions and all(f["Properties"].get("Tracing") == "Active" for f in functions)
