"""The embedded endpoint's DynamoDB is atomic as DynamoDB is: a transaction that fails its
condition never undoes another request's write (plain moto puts back its copy of the table);
and a data stack made by older code is brought up to the template."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import boto3
import pytest
import yaml

from local import endpoint
from local.endpoint import MotoServer
from local.stack import free_port


def test_failed_transactions_never_undo_concurrent_writes() -> None:
    server = MotoServer(f"http://127.0.0.1:{free_port()}")
    server.start()
    try:
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id="t",
            aws_secret_access_key="t",
        )
        table = f"t{uuid.uuid4().hex[:8]}"
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.put_item(TableName=table, Item={"k": {"S": "guard"}, "v": {"S": "done"}})
        written = [f"item{n}" for n in range(150)]

        def refused_transactions() -> None:
            for _ in range(150):
                try:
                    dynamodb.transact_write_items(
                        TransactItems=[
                            {
                                "ConditionCheck": {
                                    "TableName": table,
                                    "Key": {"k": {"S": "guard"}},
                                    "ConditionExpression": "v = :live",
                                    "ExpressionAttributeValues": {":live": {"S": "running"}},
                                }
                            },
                            {"Put": {"TableName": table, "Item": {"k": {"S": "never"}}}},
                        ]
                    )
                except dynamodb.exceptions.TransactionCanceledException:
                    pass

        refusing = threading.Thread(target=refused_transactions)
        refusing.start()
        for key in written:
            dynamodb.put_item(TableName=table, Item={"k": {"S": key}})
        refusing.join()
        stored = {item["k"]["S"] for item in dynamodb.scan(TableName=table)["Items"]}
        assert stored == {"guard", *written}
    finally:
        server.stop()


class _LongForm(yaml.SafeLoader):
    """Reads CloudFormation YAML with its short-form intrinsics in their JSON long form."""


def _long_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value = loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else loader.construct_sequence(node)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_LongForm.add_multi_constructor("!", _long_form)


def test_a_data_stack_made_by_older_code_gets_the_templates_new_tables_and_indexes(aws_endpoint: str) -> None:
    older = yaml.load(endpoint.DATA_TEMPLATE.read_text(), Loader=_LongForm)
    del older["Resources"]["UsageTable"]
    del older["Outputs"]["UsageTableName"]
    for name in ("ConnectionsTable", "ApiKeysTable"):
        del older["Resources"][name]["Properties"]["GlobalSecondaryIndexes"]
    stage = f"old{uuid.uuid4().hex[:6]}"
    cfn = endpoint.client("cloudformation", aws_endpoint)
    cfn.create_stack(
        StackName=f"dynavera-{stage}-data",
        TemplateBody=json.dumps(older),
        Parameters=[{"ParameterKey": "Stage", "ParameterValue": stage}],
    )
    cfn.get_waiter("stack_create_complete").wait(StackName=f"dynavera-{stage}-data", WaiterConfig={"Delay": 1})
    dynamodb = endpoint.client("dynamodb", aws_endpoint)
    with pytest.raises(dynamodb.exceptions.ResourceNotFoundException):
        dynamodb.describe_table(TableName=f"dynavera-{stage}-usage")
    for _ in range(2):  # and again, on a stack already up to date
        endpoint.provision(stage, aws_endpoint)
    assert dynamodb.describe_table(TableName=f"dynavera-{stage}-usage")["Table"]["TableStatus"] == "ACTIVE"
    for table in ("connections", "api-keys"):
        indexes = dynamodb.describe_table(TableName=f"dynavera-{stage}-{table}")["Table"]["GlobalSecondaryIndexes"]
        assert [i["IndexName"] for i in indexes] == ["user-index"]
