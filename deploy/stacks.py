"""One CloudFormation stack of a stage, deployed as a person can trust: through a change set whose
summary is shown (and confirmed) before it is applied, keeping the parameters a re-run does not
pass, adopting what an earlier teardown kept (DeletionPolicy Retain) instead of colliding with
it, and, when it fails, naming the first resource that failed and why.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from deploy.plan import DeployError, Outputs, Plan, shown_path, stack_name

# What CloudFormation says of a change set, or an update, with nothing to do.
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
# Failures that only follow the first one; the first one is the reason worth printing.
CONSEQUENCES = ("cancelled", "canceled", "Resource update cancelled")
# A kept resource is found again by the name its template gives it.
ADOPTABLE = {"AWS::DynamoDB::Table": "TableName", "AWS::S3::Bucket": "BucketName"}
WAITERS = {"CREATE": "stack_create_complete", "UPDATE": "stack_update_complete", "IMPORT": "stack_import_complete"}
SYMBOLS = {"Add": "+", "Modify": "~", "Remove": "-", "Import": "<", "Dynamic": "?"}


def read_template(path: Path) -> dict[str, Any]:
    """A template, YAML or JSON, its intrinsic functions as their long forms ({"Fn::Sub": …})."""
    from cfnlint.decode import decode

    parsed, errors = decode(str(path))
    if parsed is None:
        raise DeployError(f"{shown_path(path)} cannot be read: {errors[0] if errors else 'unknown error'}")
    return json.loads(json.dumps(parsed))


def read_outputs(cfn: Any, name: str) -> dict[str, str]:
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def describe(cfn: Any, name: str) -> dict[str, Any] | None:
    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as err:
        if "does not exist" in str(err):
            return None
        raise


def stack_status(cfn: Any, name: str) -> str | None:
    stack = describe(cfn, name)
    return None if stack is None else stack["StackStatus"]


def deploy_stack(
    plan: Plan,
    part: str,
    parameters: dict[str, str],
    template: Path,
    template_url: str | None = None,
    capabilities: Sequence[str] = (),
) -> Outputs:
    """Create the stack, or update it; an update with nothing to change is not an error.

    Parameters the template declares but this call does not pass keep their previous values on
    an update (a re-run without RUNTIME_SIZE keeps the size chosen before). `template_url` (an S3
    URL) is sent instead of the file's text when the template is over CloudFormation's
    51,200-byte inline limit.
    """
    name = stack_name(plan.stage, part)
    if plan.dry_run:
        _show_dry_run(plan, name, template, parameters, capabilities)
        plan.outputs[name] = Outputs(name, dry_run=True)
        return plan.outputs[name]
    body = read_template(template)
    cfn = plan.client("cloudformation")
    stack = _ready_stack(plan, name)
    source = {"TemplateURL": template_url} if template_url else {"TemplateBody": template.read_text()}
    request = {
        "StackName": name,
        "Capabilities": list(capabilities),
        "Tags": [{"Key": "dynavera:stage", "Value": plan.stage}],
    }
    if stack is None:
        kept = adoptable(plan, body, parameters)
        if kept:
            _import(plan, name, body, kept, parameters, request)
            stack = describe(cfn, name)
    if stack is None:
        _apply(plan, "CREATE", {**request, **source, "Parameters": _given(parameters)})
    else:
        previous = {p["ParameterKey"] for p in stack.get("Parameters", [])}
        _apply(plan, "UPDATE", {**request, **source, "Parameters": _kept(parameters, body, previous)})
    plan.outputs[name] = Outputs(name, read_outputs(cfn, name))
    return plan.outputs[name]


def _given(parameters: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]


def _kept(parameters: dict[str, str], template: dict[str, Any], previous: set[str]) -> list[dict[str, Any]]:
    """Passed values, and UsePreviousValue for every other declared parameter the stack has."""
    declared = template.get("Parameters", {})
    unchanged = [
        {"ParameterKey": k, "UsePreviousValue": True} for k in declared if k in previous and k not in parameters
    ]
    return _given({k: v for k, v in parameters.items() if k in declared}) + unchanged


def _ready_stack(plan: Plan, name: str) -> dict[str, Any] | None:
    """The stack, or None when it must be created; a first creation that failed is cleared away."""
    cfn = plan.client("cloudformation")
    stack = describe(cfn, name)
    status = None if stack is None else stack["StackStatus"]
    if status in ("ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS", "ROLLBACK_FAILED", "IMPORT_ROLLBACK_COMPLETE"):
        # A creation that failed (or was never executed) leaves a stack that can only be deleted;
        # so does a failed adoption, whose resources all keep DeletionPolicy Retain.
        plan.say(f"  {name} is {status} from an earlier attempt; deleting it before trying again")
        cfn.delete_stack(StackName=name)
        _wait(plan, name, "stack_delete_complete")
        return None
    if status is not None and status.endswith("_IN_PROGRESS"):
        raise DeployError(f"{name} is {status}: another deploy is at work on it. Wait for it to end, then run again.")
    return stack


def adoptable(plan: Plan, template: dict[str, Any], parameters: dict[str, str]) -> list[dict[str, Any]]:
    """The template's kept resources (DeletionPolicy Retain) that already exist under their names:
    what a teardown left behind, to import rather than collide with."""
    found = []
    for logical_id, resource in template.get("Resources", {}).items():
        key = ADOPTABLE.get(resource.get("Type", ""))
        if resource.get("DeletionPolicy") != "Retain" or key is None:
            continue
        name = resolve(resource.get("Properties", {}).get(key), template, parameters, plan)
        if name is not None and _exists(plan, resource["Type"], name):
            found.append(
                {"ResourceType": resource["Type"], "LogicalResourceId": logical_id, "ResourceIdentifier": {key: name}}
            )
    return found


def resolve(value: Any, template: dict[str, Any], parameters: dict[str, str], plan: Plan) -> str | None:
    """A resource's name: a literal, or a `Fn::Sub` of parameters and the account's pseudo
    parameters; None when it is anything else (CloudFormation names it, so it cannot collide)."""
    if isinstance(value, str):
        return value
    if not (isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str)):
        return None
    defaults = {k: str(p.get("Default", "")) for k, p in template.get("Parameters", {}).items()}
    known = {**defaults, **parameters, "AWS::Region": plan.region}
    names = re.findall(r"\$\{([^}!]+)\}", value["Fn::Sub"])
    if "AWS::AccountId" in names:
        known["AWS::AccountId"] = plan.account_id()
    if any(n not in known for n in names):
        return None
    return re.sub(r"\$\{([^}!]+)\}", lambda m: known[m.group(1)], value["Fn::Sub"])


def _exists(plan: Plan, resource_type: str, name: str) -> bool:
    try:
        if resource_type == "AWS::DynamoDB::Table":
            plan.client("dynamodb").describe_table(TableName=name)
        else:
            plan.client("s3").head_bucket(Bucket=name)
    except ClientError as err:
        if err.response["Error"]["Code"] in ("ResourceNotFoundException", "404", "NoSuchBucket"):
            return False
        raise
    return True


def _import(
    plan: Plan,
    name: str,
    template: dict[str, Any],
    kept: list[dict[str, Any]],
    parameters: dict[str, str],
    request: dict[str, Any],
) -> None:
    """Bring the kept resources under a new stack first: an import may not create anything else
    nor declare outputs, so the full template follows as an update."""
    ids = {k["LogicalResourceId"] for k in kept}
    plan.say(f"  {name}: adopting what an earlier teardown kept: " + ", ".join(sorted(ids)))
    subset = {
        **{
            k: v
            for k, v in template.items()
            if k in ("AWSTemplateFormatVersion", "Parameters", "Mappings", "Conditions")
        },
        "Resources": {k: v for k, v in template["Resources"].items() if k in ids},
    }
    declared = subset.get("Parameters", {})
    # Stack tags wait for the update: an import changes nothing on the resources it adopts.
    untagged = {k: v for k, v in request.items() if k != "Tags"}
    _apply(
        plan,
        "IMPORT",
        {
            **untagged,
            "TemplateBody": json.dumps(subset),
            "Parameters": _given({k: v for k, v in parameters.items() if k in declared}),
            "ResourcesToImport": kept,
        },
    )


def _apply(plan: Plan, kind: str, request: dict[str, Any]) -> None:
    """Create the change set, show it, ask, execute it, wait for the stack."""
    cfn = plan.client("cloudformation")
    name = request["StackName"]
    change_set = f"dynavera-{kind.lower()}-{time.strftime('%Y%m%d%H%M%S')}"
    try:
        created = cfn.create_change_set(ChangeSetName=change_set, ChangeSetType=kind, **request)
    except ClientError as err:
        if any(text in str(err) for text in NO_CHANGES):
            plan.say(f"  {name}: no changes")
            return
        raise DeployError(f"CloudFormation refused the change set for {name}: {err}") from err
    change_set_id = created["Id"]
    described = _created_change_set(plan, change_set_id)
    if described is None:
        plan.say(f"  {name}: no changes")
        cfn.delete_change_set(ChangeSetName=change_set_id)
        return
    plan.say(f"  {name}: {kind.lower()}, {len(described)} change(s)")
    for line in summary(described):
        plan.say("    " + line)
    if not plan.confirm(f"Apply these changes to {name}?"):
        cfn.delete_change_set(ChangeSetName=change_set_id)
        raise DeployError(f"Stopped before changing {name}; nothing was applied. YES=1 applies without asking.")
    cfn.execute_change_set(ChangeSetName=change_set_id)
    _wait(plan, name, WAITERS[kind])


def _created_change_set(plan: Plan, change_set_id: str) -> list[dict[str, Any]] | None:
    """The change set's changes once it is ready; None when it holds no change."""
    cfn = plan.client("cloudformation")
    try:
        cfn.get_waiter("change_set_create_complete").wait(
            ChangeSetName=change_set_id, WaiterConfig={"Delay": plan.poll_seconds, "MaxAttempts": 120}
        )
    except WaiterError as err:
        reason = (err.last_response or {}).get("StatusReason", "")
        if any(text in reason for text in NO_CHANGES):
            return None
        raise DeployError(f"The change set could not be made: {reason or err}") from err
    changes, token = [], None
    while True:
        page = cfn.describe_change_set(ChangeSetName=change_set_id, **({"NextToken": token} if token else {}))
        changes += page.get("Changes", [])
        token = page.get("NextToken")
        if not token:
            return changes


def summary(changes: list[dict[str, Any]]) -> list[str]:
    """One line a change: what happens to which resource, and whether it is replaced."""
    lines = []
    for change in changes:
        resource = change.get("ResourceChange", {})
        action = resource.get("Action", "?")
        what = f"{resource.get('LogicalResourceId')} ({resource.get('ResourceType')})"
        line = f"{SYMBOLS.get(action, '?')} {action:<7} {what}"
        if resource.get("Replacement") in ("True", "Conditional"):
            line += f"  REPLACED{'' if resource['Replacement'] == 'True' else ' (conditional)'}"
        lines.append(line)
    return lines


def _wait(plan: Plan, name: str, waiter: str) -> None:
    cfn = plan.client("cloudformation")
    try:
        cfn.get_waiter(waiter).wait(
            StackName=name, WaiterConfig={"Delay": plan.poll_seconds, "MaxAttempts": 3600 // plan.poll_seconds}
        )
    except WaiterError as err:
        raise DeployError(f"{name} did not deploy: {first_failure(cfn, name) or err}") from err


def first_failure(cfn: Any, name: str) -> str | None:
    """The first resource that failed in the stack's latest operation, and CloudFormation's
    reason: what caused it, not the cancellations and rollbacks that followed."""
    events, token = [], None
    while True:
        page = cfn.describe_stack_events(StackName=name, **({"NextToken": token} if token else {}))
        for event in page["StackEvents"]:
            events.append(event)
            if event["LogicalResourceId"] == name and event.get("ResourceStatusReason") == "User Initiated":
                token = None
                break
        else:
            token = page.get("NextToken")
        if not token:
            break
    failed = [e for e in reversed(events) if e["ResourceStatus"].endswith("FAILED") and e["LogicalResourceId"] != name]
    causes = [e for e in failed if not any(text in e.get("ResourceStatusReason", "") for text in CONSEQUENCES)]
    first = (causes or failed or [None])[0]
    if first is None:
        return None
    return f"{first['LogicalResourceId']} ({first.get('ResourceType')}): {first.get('ResourceStatusReason', '')}"


def _show_dry_run(
    plan: Plan, name: str, template: Path, parameters: dict[str, str], capabilities: Sequence[str]
) -> None:
    """The AWS CLI commands doing what deploy_stack does."""
    cli = ["aws", "cloudformation", "create-change-set", "--stack-name", name, "--change-set-name", "dynavera-<time>"]
    cli += ["--change-set-type", "CREATE|UPDATE", "--template-body", f"file://{shown_path(template)}"]
    cli += ["--capabilities", *capabilities] if capabilities else []
    cli += (
        ["--parameters", *(f"ParameterKey={k},ParameterValue={v}" for k, v in parameters.items())] if parameters else []
    )
    plan.show(cli, "UPDATE keeps the parameters not given (UsePreviousValue)")
    plan.show(
        ["aws", "cloudformation", "describe-change-set", "--stack-name", name, "--change-set-name", "dynavera-<time>"]
    )
    plan.show(
        ["aws", "cloudformation", "execute-change-set", "--stack-name", name, "--change-set-name", "dynavera-<time>"]
    )


def delete_stack(plan: Plan, part: str) -> None:
    name = stack_name(plan.stage, part)
    plan.show(["aws", "cloudformation", "delete-stack", "--stack-name", name])
    plan.show(["aws", "cloudformation", "wait", "stack-delete-complete", "--stack-name", name])
    if plan.dry_run:
        return
    cfn = plan.client("cloudformation")
    if stack_status(cfn, name) is None:
        plan.say(f"  {name}: not there")
        return
    cfn.delete_stack(StackName=name)
    _wait(plan, name, "stack_delete_complete")


def kept_resources(template: dict[str, Any]) -> list[tuple[str, str]]:
    """(logical id, type) of what a teardown leaves: the resources with DeletionPolicy Retain."""
    return [
        (logical_id, resource["Type"])
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("DeletionPolicy") == "Retain"
    ]


def empty_bucket(plan: Plan, part: str, output: str) -> None:
    """A stack's bucket must be empty before CloudFormation can delete it."""
    if plan.dry_run:
        plan.show(["aws", "s3", "rm", f"s3://<{stack_name(plan.stage, part)}.{output}>", "--recursive"])
        return
    if stack_status(plan.client("cloudformation"), stack_name(plan.stage, part)) is None:
        return
    bucket = plan.stack_outputs(part)[output]
    plan.show(["aws", "s3", "rm", f"s3://{bucket}", "--recursive"])
    s3 = plan.client("s3")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        objects = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if objects:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
