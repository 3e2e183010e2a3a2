"""A small evaluator for the identity policies in .chalice/: Allow and Deny statements with
IAM's `*` and `?` wildcards on actions and resources (no conditions; the policies use none)."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

CHALICE_DIR = Path(__file__).resolve().parents[2] / ".chalice"


def load_policy(stage: str) -> dict[str, Any]:
    return json.loads((CHALICE_DIR / f"policy-{stage}.json").read_text())


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _matches(statement: dict[str, Any], action: str, resource: str) -> bool:
    # IAM compares actions case-insensitively and resources case-sensitively.
    actions = _listed(statement.get("Action", []))
    resources = _listed(statement.get("Resource", []))
    return any(fnmatchcase(action.lower(), a.lower()) for a in actions) and any(
        fnmatchcase(resource, r) for r in resources
    )


def allows(policy: dict[str, Any], action: str, resource: str) -> bool:
    """True when some statement allows the action on the resource and none denies it."""
    statements = policy["Statement"]
    if any(s["Effect"] == "Deny" and _matches(s, action, resource) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _matches(s, action, resource) for s in statements)


def granted_actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] if s["Effect"] == "Allow" for a in _listed(s["Action"])}


ACCOUNT = "123456789012"


def request_arn(service: str, operation: str, params: dict[str, Any], endpoint_url: str, region: str) -> str:
    """The resource ARN IAM authorises one API request against."""
    if service == "dynamodb":
        arn = f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{params['TableName']}"
        return f"{arn}/index/{params['IndexName']}" if params.get("IndexName") else arn
    if service == "sqs":
        name = params.get("QueueName") or params["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]
        return f"arn:aws:sqs:{region}:{ACCOUNT}:{name}"
    if service == "apigatewaymanagementapi":
        host, _, stage = endpoint_url.split("://", 1)[1].partition("/")
        method = {"PostToConnection": "POST", "GetConnection": "GET", "DeleteConnection": "DELETE"}[operation]
        return f"arn:aws:execute-api:{region}:{ACCOUNT}:{host.split('.')[0]}/{stage}/{method}/@connections/{params['ConnectionId']}"
    raise ValueError(f"No ARN rule for {service}:{operation}; the Lambdas are not expected to call it.")
