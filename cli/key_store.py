"""Where `./dynavera keys create` writes: a deployed stage's table with the caller's own AWS
credentials, or the local stack when asked. Never the local stack by silent fallback: a key
meant for AWS but written to localhost makes every call to the deployed API answer 401.

It only arranges the environment that chalicelib's settings and botocore read.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

from botocore.exceptions import BotoCoreError
from pynamodb.exceptions import PynamoDBException

from cli import stages

TABLE_ERRORS = (PynamoDBException, BotoCoreError)
DEFAULT_LOCAL_REGION = "us-east-1"


def target(stage: str | None, local: bool, region: str | None, env: MutableMapping[str, str] = os.environ) -> str:
    """Point the environment at the key's table; a description of it, for the user."""
    if local:
        from localstack_client.config import get_service_endpoint

        # LocalStack's own settings (LOCALSTACK_HOST, USE_SSL, AWS_ENDPOINT_URL) pick the endpoint.
        env["AWS_ENDPOINT_URL"] = get_service_endpoint("dynamodb") or ""
        return _endpoint(stage, env, dummy_credentials=True)
    if env.get("AWS_ENDPOINT_URL"):
        return _endpoint(stage, env, dummy_credentials=False)
    return _deployed(stage, region, env)


def _endpoint(stage: str | None, env: MutableMapping[str, str], dummy_credentials: bool) -> str:
    if dummy_credentials:
        for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
            env.setdefault(name, value)
    env.setdefault("AWS_DEFAULT_REGION", DEFAULT_LOCAL_REGION)
    env["DYNAVERA_STAGE"] = stage or env.get("DYNAVERA_STAGE") or "dev"
    return f"stage {env['DYNAVERA_STAGE']} at {env['AWS_ENDPOINT_URL']}"


def _deployed(stage: str | None, region: str | None, env: MutableMapping[str, str]) -> str:
    import boto3

    chosen = stages.current(env)
    name = stage or (chosen.name if chosen else None) or env.get("DYNAVERA_STAGE")
    if not name:
        sys.exit(
            "dynavera: where should the key go? Pass --stage STAGE for a deployed stage (written with your "
            "own AWS credentials), or --local for the local stack of 'make run'."
        )
    if region is None and chosen is not None and chosen.name == name:
        region = chosen.region
    session = boto3.Session(region_name=region)
    if session.region_name is None:
        sys.exit(f"dynavera: no AWS region for stage {name}; pass --region or set AWS_REGION.")
    if session.get_credentials() is None:
        sys.exit(
            f"dynavera: no AWS credentials to write stage {name}'s keys with. Configure them (aws configure, "
            "aws sso login, or AWS_PROFILE), or pass --local for the local stack."
        )
    env["DYNAVERA_STAGE"] = name
    env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = session.region_name
    return f"stage {name} in {session.region_name}"
