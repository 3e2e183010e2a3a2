"""A small evaluator for the identity policies in .chalice/: Allow and Deny statements with
IAM's `*` and `?` wildcards on actions and resources, and the one policy variable they use,
`${aws:PrincipalAccount}`, resolved to the role's account (no conditions; the policies use none)."""

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
    resources = [r.replace("${aws:PrincipalAccount}", ACCOUNT) for r in _listed(statement.get("Resource", []))]
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
# What Lambda itself does with the role, beyond the code's own calls.
PLATFORM_ACTIONS = {
    # the SQS event source mapping polls the runs queue for the executor
    "sqs:ReceiveMessage": "queue",
    "sqs:DeleteMessage": "queue",
    "sqs:GetQueueAttributes": "queue",
    "sqs:ChangeMessageVisibility": "queue",
    # the runtime writes the function's logs (Powertools' EMF metrics travel in them); the
    # app's stack creates each log group, with its retention, so the role never does
    "logs:CreateLogStream": "log-group",
    "logs:PutLogEvents": "log-group",
    # X-Ray: Lambda sends the segments of every traced invocation ("xray": true in the stages)
    "xray:PutTraceSegments": "*",
    "xray:PutTelemetryRecords": "*",
    # the executor's VPC attachment (the AWSLambdaVPCAccessExecutionRole set)
    "ec2:CreateNetworkInterface": "*",
    "ec2:DescribeNetworkInterfaces": "*",
    "ec2:DescribeSubnets": "*",
    "ec2:DeleteNetworkInterface": "*",
    "ec2:AssignPrivateIpAddresses": "*",
    "ec2:UnassignPrivateIpAddresses": "*",
}
