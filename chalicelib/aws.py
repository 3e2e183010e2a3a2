"""AWS clients, created once per container and reused across invocations (the Lambda idiom),
for the settings the wiring step hands over last (`configure`)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.config import Config
from pynamodb.connection import Connection

if TYPE_CHECKING:
    from chalicelib.settings import Settings

_settings: Settings | None = None


def configure(settings: Settings) -> None:
    """Use these settings from now on; the clients of the previous ones are forgotten."""
    global _settings
    _settings = settings
    for cached in (_session, dynamodb, sqs, runs_queue_url, ingest_queue_url, s3, connections_api):
        cached.cache_clear()


def _target() -> Settings:
    if _settings is None:
        raise RuntimeError("chalicelib is not wired: call chalicelib.wiring.wire(settings) first.")
    return _settings


@cache
def _session() -> botocore.session.Session:
    # botocore directly, as PynamoDB does: boto3 would add its import time to every cold start.
    return botocore.session.get_session()


@cache
def dynamodb() -> Connection:
    """PynamoDB's low-level connection, for the transactions that span tables."""
    settings = _target()
    key, secret = settings.local_credentials or (None, None)
    return Connection(
        region=settings.region, host=settings.aws_endpoint_url, aws_access_key_id=key, aws_secret_access_key=secret
    )


def _client(service: str, config: Config | None = None) -> Any:
    settings = _target()
    key, secret = settings.local_credentials or (None, None)
    return _session().create_client(
        service,
        region_name=settings.region,
        endpoint_url=settings.aws_endpoint_url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=config,
    )


@cache
def sqs() -> Any:
    return _client("sqs")


@cache
def runs_queue_url() -> str:
    return sqs().get_queue_url(QueueName=_target().runs_queue_name)["QueueUrl"]


@cache
def ingest_queue_url() -> str:
    return sqs().get_queue_url(QueueName=_target().ingest_queue_name)["QueueUrl"]


@cache
def s3() -> Any:
    """For presigning uploads only: the signature is made here and the client's POST goes
    straight to S3, with the role's (or the local endpoint's) credentials."""
    return _client("s3", Config(signature_version="s3v4"))


@cache
def connections_api(endpoint: str) -> Any:
    """The API Gateway management client that posts frames to one WebSocket API's connections."""
    key, secret = _target().local_credentials or (None, None)
    return _session().create_client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint,
        region_name=_target().region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        # One attempt per call: delivery retries a failed post itself, from the subscriber's
        # cursor and with its own backoff, so a throttled connection never holds up the others.
        config=Config(connect_timeout=2, read_timeout=3, retries={"total_max_attempts": 1}),
    )
