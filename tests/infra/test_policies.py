"""The hand-written stage policies allow every AWS call the handlers can make, on that stage's
resources only, and grant no action that neither the code nor the Lambda platform uses."""

from __future__ import annotations

import json

import pytest

from tests.infra import code_calls
from tests.infra.conftest import chalice_config, substitute, template
from tests.infra.iam_policy import ACCOUNT, allows, granted_actions, load_policy

STAGES = sorted(chalice_config()["stages"])
REGION = "us-east-1"
WEBSOCKET_API_ID = "f6g7h8i9j0"
# What Lambda itself does with the role, beyond the code's own calls.
PLATFORM_ACTIONS = {
    # the SQS event source mapping polls the runs queue for the executor
    "sqs:ReceiveMessage": "queue",
    "sqs:DeleteMessage": "queue",
    "sqs:GetQueueAttributes": "queue",
    "sqs:ChangeMessageVisibility": "queue",
    # the runtime writes the function's logs (Powertools' EMF metrics travel in them)
    "logs:CreateLogGroup": "log-group",
    "logs:CreateLogStream": "log-group",
    "logs:PutLogEvents": "log-group",
    # the executor's VPC attachment (the AWSLambdaVPCAccessExecutionRole set)
    "ec2:CreateNetworkInterface": "*",
    "ec2:DescribeNetworkInterfaces": "*",
    "ec2:DescribeSubnets": "*",
    "ec2:DeleteNetworkInterface": "*",
    "ec2:AssignPrivateIpAddresses": "*",
    "ec2:UnassignPrivateIpAddresses": "*",
}


def _tables(stage: str) -> list[str]:
    return [
        substitute(r["Properties"]["TableName"], {"Stage": stage})
        for r in template("data.yaml")["Resources"].values()
        if r["Type"] == "AWS::DynamoDB::Table"
    ]


def _table_arn(table: str, index: str | None = None) -> str:
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
    return f"{arn}/index/{index}" if index else arn


def _for_stage(table: str, stage: str) -> str:
    return f"dynavera-{stage}-" + table.removeprefix("dynavera-dev-")


def _resources_for(call: code_calls.AwsCall, stage: str) -> list[str]:
    """The ARNs one call site may touch in the stage: its table when known, else any of them."""
    config = chalice_config()["stages"][stage]
    if call.service == "dynamodb":
        if call.table is None:
            return [_table_arn(t) for t in _tables(stage)]
        return [_table_arn(_for_stage(call.table, stage), call.index)]
    if call.service == "sqs":
        return [f"arn:aws:sqs:{REGION}:{ACCOUNT}:{config['environment_variables']['RUNS_QUEUE_NAME']}"]
    if call.service == "apigatewaymanagementapi":
        stage_name = config["api_gateway_stage"]
        return [f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{WEBSOCKET_API_ID}/{stage_name}/{call.http_method}/@connections/Xk7pSdS3IAMCJcw="]
    raise AssertionError(f"{call.where}: the code calls {call.service}, which no policy covers")


def test_the_scan_finds_the_calls_every_box_of_the_design_makes() -> None:
    actions = {call.action for call in code_calls.aws_calls()}
    # A scan that finds nothing would make the policy tests below pass vacuously.
    assert {"dynamodb:PutItem", "dynamodb:Query", "sqs:SendMessage", "execute-api:ManageConnections"} <= actions


@pytest.mark.parametrize("stage", STAGES)
def test_stage_policy_allows_every_call_the_handlers_can_make(stage: str) -> None:
    policy = load_policy(stage)
    refused = []
    for call in code_calls.aws_calls():
        resources = _resources_for(call, stage)
        if not any(allows(policy, call.action, arn) for arn in resources):
            refused.append(f"{call.where}: {call.action} on {resources}")
    assert not refused, "\n".join(refused)


@pytest.mark.parametrize("stage", STAGES)
def test_stage_policy_lets_every_model_index_be_queried(stage: str) -> None:
    policy = load_policy(stage)
    for model in code_calls.models().values():
        table = _for_stage(code_calls.table_of(model), stage)
        for index in code_calls.model_indexes(model).values():
            assert allows(policy, "dynamodb:Query", _table_arn(table, index)), (table, index)


@pytest.mark.parametrize("stage", STAGES)
def test_stage_policy_allows_what_lambda_does_for_the_executor(stage: str) -> None:
    policy = load_policy(stage)
    queue = chalice_config()["stages"][stage]["environment_variables"]["RUNS_QUEUE_NAME"]
    targets = {
        "queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
        "log-group": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/dynavera-{stage}-run_executions:log-stream:x",
        "*": "*",
    }
    for action, target in PLATFORM_ACTIONS.items():
        assert allows(policy, action, targets[target]), action


@pytest.mark.parametrize("stage", STAGES)
def test_stage_policy_grants_no_action_beyond_the_code_and_the_platform(stage: str) -> None:
    used = {call.action for call in code_calls.aws_calls()} | set(PLATFORM_ACTIONS)
    assert granted_actions(load_policy(stage)) <= used
    assert not any("*" in action for action in granted_actions(load_policy(stage)))


@pytest.mark.parametrize(("stage", "other"), [("dev", "prod"), ("prod", "dev")])
def test_stage_policy_reaches_nothing_of_the_other_stage(stage: str, other: str) -> None:
    policy = load_policy(stage)
    for action in granted_actions(policy):
        if action.startswith("dynamodb:"):
            assert not any(allows(policy, action, _table_arn(t)) for t in _tables(other)), action
    queue = chalice_config()["stages"][other]["environment_variables"]["RUNS_QUEUE_NAME"]
    assert not allows(policy, "sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}")
    other_stage = chalice_config()["stages"][other]["api_gateway_stage"]
    connection = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{WEBSOCKET_API_ID}/{other_stage}/POST/@connections/abc="
    assert not allows(policy, "execute-api:ManageConnections", connection)


def test_api_keys_are_read_only_to_the_lambdas() -> None:
    # Keys are minted by `./dynavera keys create` with the operator's credentials, never by a handler.
    for stage in STAGES:
        table = _table_arn(f"dynavera-{stage}-api-keys")
        assert allows(load_policy(stage), "dynamodb:GetItem", table)
        for write in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
            assert not allows(load_policy(stage), write, table), (stage, write)


def test_prod_policy_is_the_dev_policy_with_the_stage_renamed() -> None:
    dev = json.dumps(load_policy("dev"))
    renamed = dev.replace("dynavera-dev-", "dynavera-prod-").replace("/dev/", "/prod/")
    assert json.loads(renamed) == load_policy("prod")

