"""The hand-written stage policies reach that stage's resources only, let every index be queried and
allow what Lambda does for the executor. The calls the handlers really make are checked against
them in tests/handlers/test_iam.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pynamodb.indexes import Index

from chalicelib.models import TABLES
from chalicelib.settings import Settings
from contract import documents_bucket
from tests.infra.conftest import chalice_config, substitute, template
from tests.infra.iam_policy import ACCOUNT, PLATFORM_ACTIONS, allows, granted_actions, load_policy

STAGES = sorted(chalice_config()["stages"])
REGION = "us-east-1"
WEBSOCKET_API_ID = "f6g7h8i9j0"


def _tables(stage: str) -> list[str]:
    return [
        substitute(r["Properties"]["TableName"], {"Stage": stage})
        for r in template("data.yaml")["Resources"].values()
        if r["Type"] == "AWS::DynamoDB::Table"
    ]


def _table_arn(table: str, index: str | None = None) -> str:
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
    return f"{arn}/index/{index}" if index else arn


def indexes(model: Any) -> list[str]:
    return [value.Meta.index_name for value in vars(model).values() if isinstance(value, Index)]


@pytest.mark.parametrize("stage", STAGES)
def test_stage_policy_lets_every_model_index_be_queried(stage: str) -> None:
    policy = load_policy(stage)
    settings = Settings.from_env({"DYNAVERA_STAGE": stage})
    for model, field in TABLES.items():
        table = getattr(settings, field)
        for index in indexes(model):
            assert allows(policy, "dynamodb:Query", _table_arn(table, index)), (table, index)


@pytest.mark.parametrize("stage", STAGES)
def test_stage_policy_allows_what_lambda_does_for_the_executor(stage: str) -> None:
    policy = load_policy(stage)
    queue = chalice_config()["stages"][stage]["environment_variables"]["RUNS_QUEUE_NAME"]
    targets = {
        "queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
        "log-group": (
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/dynavera-{stage}-run_executions:log-stream:x"
        ),
        "*": "*",
    }
    for action, target in PLATFORM_ACTIONS.items():
        assert allows(policy, action, targets[target]), action


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


def test_api_keys_are_reached_by_the_lambdas_one_key_or_one_user_at_a_time() -> None:
    # A user creates and revokes their own keys (POST and DELETE /keys) and lists them through
    # user-index; reading the whole table (`./dynavera keys list`) takes the operator's credentials.
    for stage in STAGES:
        table = _table_arn(f"dynavera-{stage}-api-keys")
        for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
            assert allows(load_policy(stage), action, table), (stage, action)
        assert allows(load_policy(stage), "dynamodb:Query", f"{table}/index/user-index")
        for read_all in ("dynamodb:Scan", "dynamodb:Query"):
            assert not allows(load_policy(stage), read_all, table), (stage, read_all)


def test_prod_policy_is_the_dev_policy_with_the_stage_renamed() -> None:
    dev = json.dumps(load_policy("dev"))
    renamed = dev.replace("dynavera-dev-", "dynavera-prod-").replace("/dev/", "/prod/")
    renamed = renamed.replace("/aws/lambda/dynavera-dev:", "/aws/lambda/dynavera-prod:")  # the REST API's function
    assert json.loads(renamed) == load_policy("prod")


@pytest.mark.parametrize("stage", STAGES)
def test_the_api_may_only_presign_uploads_of_its_own_stage_in_its_own_account(stage: str) -> None:
    policy = load_policy(stage)
    other = next(s for s in STAGES if s != stage)
    bucket = f"arn:aws:s3:::{documents_bucket(stage, ACCOUNT)}"
    assert allows(policy, "s3:PutObject", f"{bucket}/uploads/u/c/d")
    assert not allows(policy, "s3:PutObject", f"{bucket}/chunks/c/d.jsonl.gz")
    assert not allows(policy, "s3:PutObject", f"arn:aws:s3:::{documents_bucket(other, ACCOUNT)}/uploads/u/c/d")
    # The same stage's name in another account (S3 names are global): someone else's bucket.
    assert not allows(policy, "s3:PutObject", f"arn:aws:s3:::{documents_bucket(stage, '210987654321')}/uploads/u/c/d")
    for action in ("s3:GetObject", "s3:DeleteObject", "s3:ListBucket"):
        assert not allows(policy, action, f"{bucket}/uploads/u/c/d"), action
    ingest = f"arn:aws:sqs:{REGION}:{ACCOUNT}:dynavera-{other}-ingest"
    assert not allows(policy, "sqs:SendMessage", ingest)
