"""The embedded endpoint's DynamoDB is atomic as DynamoDB is: a transaction that fails its
condition never undoes another request's write (plain moto puts back its copy of the table)."""

from __future__ import annotations

import threading
import uuid

import boto3

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
