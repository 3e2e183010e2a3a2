"""What a rollout shares between its steps: the stage, the AWS clients, the stack outputs read
so far, and a dry-run switch that prints each AWS call as the equivalent CLI command instead.

The AWS calls go through boto3 (no AWS CLI needed, and the tests run them on a moto server);
the lines printed are the AWS CLI commands doing the same, so a dry run reads as a runbook.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError, WaiterError

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
BUILD = ROOT / "build" / "deploy"


class DeployError(RuntimeError):
    """A rollout cannot go on; the message says what to do."""


def stack_name(stage: str, part: str) -> str:
    return f"dynavera-{stage}-{part}"


class Outputs(dict[str, str]):
    """A stack's outputs; in a dry run, a value not read yet stands as `<stack.Key>`."""

    def __init__(self, stack: str, values: dict[str, str] | None = None, dry_run: bool = False) -> None:
        super().__init__(values or {})
        self.stack = stack
        self.dry_run = dry_run

    def __missing__(self, key: str) -> str:
        if self.dry_run:
            return f"<{self.stack}.{key}>"
        raise DeployError(f"Stack {self.stack} has no output {key}; was it deployed from this repository's infra/?")


@dataclass
class Plan:
    """One stage's rollout or teardown."""

    stage: str
    region: str
    dry_run: bool = False
    aws: Callable[[str], Any] | None = None  # service name → client; boto3's default chain when None
    poll_seconds: int = 10
    run_command: Callable[[Sequence[str], Path, str | None, dict[str, str]], None] | None = None
    outputs: dict[str, Outputs] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.aws is None:
            self.aws = boto3.Session(region_name=self.region).client
        if self.run_command is None:
            self.run_command = _run

    @property
    def out_dir(self) -> Path:
        return BUILD / self.stage

    def client(self, service: str) -> Any:
        assert self.aws is not None
        if service not in self._clients:
            self._clients[service] = self.aws(service)
        return self._clients[service]

    def say(self, line: str) -> None:
        print(line, flush=True)

    def show(self, command: Sequence[str], note: str = "") -> None:
        """Print a command as a user would type it."""
        self.say("  $ " + shlex.join(command) + (f"    # {note}" if note else ""))

    def command(self, command: Sequence[str], cwd: Path = ROOT, stdin: str | None = None, local: bool = False) -> None:
        """Run a command (a dry run runs only the local ones, which call no AWS API)."""
        self.show(command)
        if self.dry_run and not local:
            return
        assert self.run_command is not None
        self.run_command(command, cwd, stdin, {"AWS_DEFAULT_REGION": self.region})

    def stack_outputs(self, part: str) -> Outputs:
        name = stack_name(self.stage, part)
        if name not in self.outputs:
            values = {} if self.dry_run else read_outputs(self.client("cloudformation"), name)
            self.outputs[name] = Outputs(name, values, self.dry_run)
        return self.outputs[name]


def _run(command: Sequence[str], cwd: Path, stdin: str | None, env: dict[str, str]) -> None:
    try:
        done = subprocess.run(list(command), cwd=cwd, input=stdin, text=True, check=False, env={**os.environ, **env})
    except FileNotFoundError as err:
        raise DeployError(
            f"{command[0]} is not installed (or not on PATH); see the README's deploy prerequisites."
        ) from err
    if done.returncode != 0:
        raise DeployError(f"{command[0]} failed (exit {done.returncode}): {shlex.join(command)}")


def read_outputs(cfn: Any, name: str) -> dict[str, str]:
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def stack_status(cfn: Any, name: str) -> str | None:
    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except ClientError as err:
        if "does not exist" in str(err):
            return None
        raise


def deploy_stack(
    plan: Plan,
    part: str,
    parameters: dict[str, str],
    template: Path,
    template_url: str | None = None,
    capabilities: Sequence[str] = (),
) -> Outputs:
    """Create the stack, or update it; an update with nothing to change is not an error.

    `template_url` (an S3 URL) is sent instead of the file's text when the template is over
    CloudFormation's 51,200-byte inline limit.
    """
    name = stack_name(plan.stage, part)
    cli = ["aws", "cloudformation", "deploy", "--stack-name", name, "--template-file", str(template.relative_to(ROOT))]
    cli += ["--no-fail-on-empty-changeset", *(["--capabilities", *capabilities] if capabilities else [])]
    plan.show(cli + (["--parameter-overrides", *(f"{k}={v}" for k, v in parameters.items())] if parameters else []))
    if plan.dry_run:
        plan.outputs[name] = Outputs(name, dry_run=True)
        return plan.outputs[name]
    request = {
        "StackName": name,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Capabilities": list(capabilities),
        "Tags": [{"Key": "dynavera:stage", "Value": plan.stage}],
        **({"TemplateURL": template_url} if template_url else {"TemplateBody": template.read_text()}),
    }
    _create_or_update(plan, request)
    plan.outputs[name] = Outputs(name, read_outputs(plan.client("cloudformation"), name))
    return plan.outputs[name]


def _create_or_update(plan: Plan, request: dict[str, Any]) -> None:
    cfn = plan.client("cloudformation")
    name = request["StackName"]
    status = stack_status(cfn, name)
    if status == "ROLLBACK_COMPLETE":
        # A first creation that failed leaves a stack that can only be deleted.
        plan.say(f"  {name} failed to create last time; deleting it before trying again")
        cfn.delete_stack(StackName=name)
        _wait(plan, name, "stack_delete_complete")
        status = None
    if status is None:
        cfn.create_stack(**request)
        _wait(plan, name, "stack_create_complete")
        return
    try:
        cfn.update_stack(**request)
    except ClientError as err:
        if "No updates are to be performed" not in str(err):
            raise DeployError(f"Updating {name} failed: {err}") from err
        plan.say(f"  {name}: no changes")
        return
    _wait(plan, name, "stack_update_complete")


def _wait(plan: Plan, name: str, waiter: str) -> None:
    cfn = plan.client("cloudformation")
    try:
        cfn.get_waiter(waiter).wait(
            StackName=name, WaiterConfig={"Delay": plan.poll_seconds, "MaxAttempts": 3600 // plan.poll_seconds}
        )
    except WaiterError as err:
        reasons = [
            f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
            for e in cfn.describe_stack_events(StackName=name)["StackEvents"][:30]
            if e["ResourceStatus"].endswith("FAILED")
        ]
        raise DeployError(f"{name} did not deploy ({err}).\n  " + "\n  ".join(reasons[:5])) from err


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
