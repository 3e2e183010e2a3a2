"""AWS clients, created once per container and reused across invocations (the Lambda idiom)."""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session
from botocore.config import Config
from pynamodb.connection import Connection

from chalicelib.settings import settings


@cache
def _session() -> botocore.session.Session:
    # botocore directly, as PynamoDB does: boto3 would add its import time to every cold start.
    return botocore.session.get_session()


@cache
def dynamodb() -> Connection:
    """PynamoDB's low-level connection, for the transactions that span tables."""
    return Connection(region=settings.region)


@cache
def sqs() -> Any:
    return _session().create_client("sqs", region_name=settings.region)


@cache
def runs_queue_url() -> str:
    return sqs().get_queue_url(QueueName=settings.runs_queue_name)["QueueUrl"]


@cache
def connections_api(endpoint: str) -> Any:
    """The API Gateway management client that posts frames to one WebSocket API's connections."""
    return _session().create_client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint,
        region_name=settings.region,
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2}),
    )
