"""Our orchestration of CloudFormation, against stubbed clients (botocore's Stubber): a teardown's
kept tables adopted by an import before the update, parameters not passed kept, the change set
shown and confirmed, nothing to change is no error, and a failure named by its first cause.
Then what the tool checks before any stack: the stage's entry, Docker's daemon, the region."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import boto3
import pytest
from botocore.stub import Stubber

from contract import documents_bucket
from deploy import stage as stages
from deploy.__main__ import region_of
from deploy.plan import INFRA, DeployError, Plan
from deploy.stacks import deploy_stack, first_failure
from tests.infra.conftest import REGION, ROOT
from tests.infra.iam_policy import ACCOUNT

NAME = "dynavera-dev-data"
NOW = datetime(2026, 11, 30, tzinfo=UTC)
CHANGE_SET = "arn:aws:cloudformation:us-east-1:123456789012:changeSet/dynavera/1"


class Stubbed:
    """A Plan whose clients answer from stubs; every CreateChangeSet request is recorded."""

    def __init__(self, answers: list[str] | None = None) -> None:
        session = boto3.Session(region_name=REGION, aws_access_key_id="k", aws_secret_access_key="s")
        services = ("cloudformation", "dynamodb", "apigateway", "s3", "sts")
        self.clients = {name: session.client(name) for name in services}
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}
        self.change_sets: list[dict[str, Any]] = []
        self.asked: list[str] = []
        self.clients["cloudformation"].meta.events.register(
            "provide-client-params.cloudformation.CreateChangeSet", lambda params, **_: self.change_sets.append(params)
        )
        replies = iter(answers or [])

        def ask(question: str) -> str:
            self.asked.append(question)
            return next(replies)

        self.plan = Plan(stage="dev", region=REGION, aws=self.clients.__getitem__, poll_seconds=1, ask=ask)

    @property
    def cfn(self) -> Stubber:
        return self.stubs["cloudformation"]

    def stack(
        self,
        status: str,
        parameters: dict[str, str] | None = None,
        outputs: dict[str, str] | None = None,
        name: str = NAME,
    ) -> None:
        stack = {"StackName": name, "StackId": f"id/{name}", "CreationTime": NOW, "StackStatus": status}
        stack["Parameters"] = [{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()]
        stack["Outputs"] = [{"OutputKey": k, "OutputValue": v} for k, v in (outputs or {}).items()]
        self.cfn.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": name})

    def no_stack(self, name: str = NAME) -> None:
        self.cfn.add_client_error(
            "describe_stacks",
            "ValidationError",
            f"Stack with id {name} does not exist",
            expected_params={"StackName": name},
        )

    def change_set(
        self, changes: list[tuple[str, str, str]], status: str = "CREATE_COMPLETE", reason: str = ""
    ) -> None:
        self.cfn.add_response("create_change_set", {"Id": CHANGE_SET, "StackId": f"id/{NAME}"})
        described = {"ChangeSetId": CHANGE_SET, "StackName": NAME, "Status": status, "StatusReason": reason}
        described["Changes"] = [
            {"Type": "Resource", "ResourceChange": {"Action": a, "LogicalResourceId": i, "ResourceType": t}}
            for a, i, t in changes
        ]
        self.cfn.add_response("describe_change_set", described, {"ChangeSetName": CHANGE_SET})
        if status == "CREATE_COMPLETE":
            self.cfn.add_response("describe_change_set", described, {"ChangeSetName": CHANGE_SET})

    def executed(self, status: str, parameters: dict[str, str], outputs: dict[str, str] | None = None) -> None:
        self.cfn.add_response("execute_change_set", {}, {"ChangeSetName": CHANGE_SET})
        self.stack(status, parameters, outputs)

    def table(self, name: str, exists: bool) -> None:
        if exists:
            self.stubs["dynamodb"].add_response("describe_table", {"Table": {"TableName": name}}, {"TableName": name})
        else:
            self.stubs["dynamodb"].add_client_error(
                "describe_table", "ResourceNotFoundException", f"Requested resource not found: Table: {name} not found"
            )

    def bucket(self, name: str) -> None:
        """A kept bucket's name that no bucket holds (yet)."""
        self.stubs["s3"].add_client_error("head_bucket", "404", "Not Found", expected_params={"Bucket": name})

    def account(self, account_id: str) -> None:
        """Who the credentials are: the account a name with `${AWS::AccountId}` is resolved in."""
        identity = {"Account": account_id, "Arn": f"arn:aws:iam::{account_id}:user/ops", "UserId": "AIDAOPS"}
        self.stubs["sts"].add_response("get_caller_identity", identity)

    def __enter__(self) -> Self:
        for stub in self.stubs.values():
            stub.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        for stub in self.stubs.values():
            stub.deactivate()

    def done(self) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()


RETAINED = {
    "AgentsTable": "agents",
    "ExecutionsTable": "executions",
    "EventsTable": "events",
    "ApiKeysTable": "api-keys",
    "UsageTable": "usage",
}
# Kept by the data stack too, and looked for, but not left by the teardown in this story.
NOT_LEFT = {"CollectionsTable": "collections", "DocumentsTable": "documents"}

# Kept tables that this test's teardown did not leave behind: the update creates them.
NEW = ("ApiKeysTable", "UsageTable")


def test_deploy_after_a_teardown_imports_the_kept_tables_then_updates_with_the_rest() -> None:
    with Stubbed(answers=["y", "yes"]) as aws:
        aws.no_stack()
        for logical_id, table in RETAINED.items():
            aws.table(f"dynavera-dev-{table}", exists=logical_id not in NEW)
        for table in NOT_LEFT.values():
            aws.table(f"dynavera-dev-{table}", exists=False)
        aws.account(ACCOUNT)
        aws.bucket(documents_bucket("dev", ACCOUNT))
        kept = [("Import", i, "AWS::DynamoDB::Table") for i in ("AgentsTable", "ExecutionsTable", "EventsTable")]
        aws.change_set(kept)
        aws.executed("IMPORT_COMPLETE", {})
        aws.stack("IMPORT_COMPLETE", {"Stage": "dev", "RunsVisibilityTimeoutSeconds": "900"})
        aws.change_set([*(("Add", i, "AWS::DynamoDB::Table") for i in NEW), ("Add", "RunsQueue", "AWS::SQS::Queue")])
        aws.executed("UPDATE_COMPLETE", {})
        aws.stack("UPDATE_COMPLETE", outputs={"AgentsTableName": "dynavera-dev-agents"})
        outputs = deploy_stack(aws.plan, "data", {"Stage": "dev"}, template=INFRA / "data.yaml")
        aws.done()

    assert outputs["AgentsTableName"] == "dynavera-dev-agents"
    imported, updated = aws.change_sets
    assert imported["ChangeSetType"] == "IMPORT"
    assert imported["ResourcesToImport"] == [
        {
            "ResourceType": "AWS::DynamoDB::Table",
            "LogicalResourceId": i,
            "ResourceIdentifier": {"TableName": f"dynavera-dev-{t}"},
        }
        for i, t in RETAINED.items()
        if i not in NEW
    ]
    # An import may neither create anything else nor add outputs: those come with the update.
    subset = json.loads(imported["TemplateBody"])
    assert set(subset["Resources"]) == {"AgentsTable", "ExecutionsTable", "EventsTable"} and "Outputs" not in subset
    assert all(r["DeletionPolicy"] == "Retain" for r in subset["Resources"].values())
    assert "Tags" not in imported and updated["Tags"] == [{"Key": "dynavera:stage", "Value": "dev"}]
    assert updated["ChangeSetType"] == "UPDATE" and "Outputs" in updated["TemplateBody"]
    assert updated["Parameters"] == [
        {"ParameterKey": "Stage", "ParameterValue": "dev"},
        {"ParameterKey": "RunsVisibilityTimeoutSeconds", "UsePreviousValue": True},
    ]
    assert aws.asked == [f"  Apply these changes to {NAME}? [y/N] "] * 2


def test_a_rerun_keeps_the_parameters_it_does_not_pass_and_nothing_to_change_is_no_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    no_changes = (
        "The submitted information didn't contain changes. Submit different information to create a change set."
    )
    with Stubbed() as aws:
        aws.stack("UPDATE_COMPLETE", {"Stage": "dev", "RunsVisibilityTimeoutSeconds": "1200"})
        aws.change_set([], status="FAILED", reason=no_changes)
        aws.cfn.add_response("delete_change_set", {}, {"ChangeSetName": CHANGE_SET})
        aws.stack("UPDATE_COMPLETE", outputs={"RunsQueueName": "dynavera-dev-runs"})
        deploy_stack(aws.plan, "data", {"Stage": "dev"}, template=INFRA / "data.yaml")
        aws.done()
    (request,) = aws.change_sets
    assert {"ParameterKey": "RunsVisibilityTimeoutSeconds", "UsePreviousValue": True} in request["Parameters"]
    assert f"{NAME}: no changes" in capsys.readouterr().out
    assert aws.asked == []


def test_changes_declined_at_the_prompt_are_never_applied(capsys: pytest.CaptureFixture[str]) -> None:
    with Stubbed(answers=["n"]) as aws:
        aws.stack("UPDATE_COMPLETE", {"Stage": "dev", "RunsVisibilityTimeoutSeconds": "900"})
        aws.change_set([("Modify", "RunsQueue", "AWS::SQS::Queue")])
        aws.cfn.add_response("delete_change_set", {}, {"ChangeSetName": CHANGE_SET})
        with pytest.raises(DeployError, match="nothing was applied"):
            deploy_stack(
                aws.plan, "data", {"Stage": "dev", "RunsVisibilityTimeoutSeconds": "960"}, template=INFRA / "data.yaml"
            )
        aws.done()  # no execute_change_set was stubbed: calling it would have failed the test
    assert "~ Modify  RunsQueue (AWS::SQS::Queue)" in capsys.readouterr().out


def test_without_a_terminal_or_yes_the_tool_refuses_rather_than_guessing() -> None:
    plan = Plan(stage="dev", region=REGION, aws=lambda service: None)
    stdin = sys.stdin
    try:
        sys.stdin = open(os.devnull)  # noqa: SIM115 - closed below
        with pytest.raises(DeployError, match="YES=1"):
            plan.confirm("Apply these changes?")
    finally:
        sys.stdin.close()
        sys.stdin = stdin
    assert Plan(stage="dev", region=REGION, aws=lambda service: None, yes=True).confirm("Apply?")


def test_a_failed_deploy_names_the_first_resource_that_failed_not_the_cancellations() -> None:
    def event(logical_id: str, status: str, reason: str, kind: str = "AWS::DynamoDB::Table") -> dict[str, Any]:
        return {
            "StackId": f"id/{NAME}",
            "EventId": f"{logical_id}-{status}",
            "StackName": NAME,
            "LogicalResourceId": logical_id,
            "ResourceType": kind,
            "Timestamp": NOW,
            "ResourceStatus": status,
            "ResourceStatusReason": reason,
        }

    newest_first = [
        event(NAME, "ROLLBACK_COMPLETE", "", "AWS::CloudFormation::Stack"),
        event("ExecutionsTable", "CREATE_FAILED", "Resource creation cancelled"),
        event("AgentsTable", "CREATE_FAILED", "dynavera-dev-agents already exists"),
        event("RunsQueue", "CREATE_IN_PROGRESS", ""),
        event(NAME, "CREATE_IN_PROGRESS", "User Initiated", "AWS::CloudFormation::Stack"),
        event("OldQueue", "UPDATE_FAILED", "from an earlier deploy"),
    ]
    with Stubbed() as aws:
        aws.cfn.add_response(
            "describe_stack_events", {"StackEvents": newest_first, "NextToken": "more"}, {"StackName": NAME}
        )
        reason = first_failure(aws.clients["cloudformation"], NAME)
    assert reason == "AgentsTable (AWS::DynamoDB::Table): dynavera-dev-agents already exists"


@pytest.mark.parametrize(
    ("account_role", "registry_role", "expected"),
    [
        (None, None, "create"),  # a new account: the registry stack makes API Gateway's log role
        ("arn:aws:iam::123456789012:role/ours", "arn:aws:iam::123456789012:role/ours", "create"),  # kept on re-runs
        ("arn:aws:iam::123456789012:role/other-stage", None, "existing"),  # never taken from another stage
    ],
)
def test_api_gateway_log_role_is_made_once_per_account(
    account_role: str | None, registry_role: str | None, expected: str
) -> None:
    from deploy.rollout import api_gateway_logs_role

    registry = "dynavera-dev-registry"
    with Stubbed() as aws:
        aws.stubs["apigateway"].add_response("get_account", {"cloudwatchRoleArn": account_role} if account_role else {})
        if registry_role:
            aws.stack("UPDATE_COMPLETE", outputs={"ApiGatewayLogsRoleArn": registry_role}, name=registry)
        else:
            aws.no_stack(registry)
        assert api_gateway_logs_role(aws.plan) == expected
        aws.done()


def test_the_deploy_tool_imports_nothing_of_the_runtime_or_the_tests() -> None:
    probe = (
        "import sys, deploy.__main__, deploy.rollout, app\n"
        "from deploy.stacks import read_template\n"
        "from deploy.plan import INFRA\n"
        "read_template(INFRA / 'runtime.yaml')\n"
        "heavy = ('torch', 'gpt4all', 'chromadb', 'playwright', 'moto', 'pytest', 'localstack_client', 'starlette')\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == ""


# --- before any stack ------------------------------------------------------------------------


@pytest.fixture
def stopped_docker(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A `docker` whose daemon is not running, first on PATH, and no AWS credentials at all."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
        "Is the docker daemon running?' >&2\nexit 1\n"
    )
    docker.chmod(0o755)
    yield {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "AWS_REGION": REGION,
    }


def _deploy(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_everything_missing_is_named_at_once_before_any_aws_call(stopped_docker: dict[str, str]) -> None:
    done = _deploy(["up", "--stage", "qa", "--vpc-id", "vpc-1", "--subnets", "subnet-1", "--yes"], stopped_docker)
    assert done.returncode == 1
    assert "Nothing was deployed" in done.stderr
    assert "make stage STAGE=qa" in done.stderr and ".chalice/policy-qa.json" in done.stderr
    assert "daemon does not answer" in done.stderr and "Is the docker daemon running?" in done.stderr
    assert "at least two private subnets" in done.stderr
    # Checked before the identity: no credential was needed to learn all this.
    assert "sts get-caller-identity" not in done.stdout


def test_a_stage_name_nothing_can_hold_is_refused(stopped_docker: dict[str, str]) -> None:
    for name in ("Prod", "qa_1", "-qa", "x" * 21):
        assert stages.missing(name) and "stage name" in stages.missing(name)[0], name
    done = _deploy(["stage", "--stage", "QA"], stopped_docker)
    assert done.returncode == 1 and "cannot name a stage" in done.stderr


def test_a_new_stage_is_one_command_and_then_lacks_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    chalice = tmp_path / ".chalice"
    chalice.mkdir()
    for name in ("config.json", "policy-dev.json", "policy-prod.json"):
        (chalice / name).write_text((ROOT / ".chalice" / name).read_text())
    monkeypatch.setattr(stages, "CHALICE", chalice)
    assert stages.missing("qa")
    stages.add("qa")
    assert stages.missing("qa") == []
    config = json.loads((chalice / "config.json").read_text())["stages"]
    assert config["qa"]["environment_variables"]["AGENTS_TABLE"] == "dynavera-qa-agents"
    assert config["qa"]["iam_policy_file"] == "policy-qa.json" and config["qa"]["api_gateway_stage"] == "qa"
    # The prod stage is exactly what the command makes from dev: one rule for every stage.
    prod = stages.renamed((chalice / "policy-dev.json").read_text(), "dev", "prod")
    assert json.loads(prod) == json.loads((chalice / "policy-prod.json").read_text())
    with pytest.raises(DeployError, match="exists already"):
        stages.add("qa")


def test_aws_region_is_honoured_before_the_default_and_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert region_of(None, dry_run=False) == "eu-west-3"
    assert region_of("ap-south-1", dry_run=False) == "ap-south-1"
    monkeypatch.delenv("AWS_REGION")
    assert region_of(None, dry_run=False) == "us-west-2"


def test_the_chalice_command_runs_with_the_plans_region_in_both_variables() -> None:
    seen: list[dict[str, str]] = []
    plan = Plan(
        stage="dev", region="eu-west-3", aws=lambda service: None, run_command=lambda c, cwd, i, env: seen.append(env)
    )
    plan.command(["true"], local=True, env={"CONSOLE_ORIGIN": "https://x.cloudfront.net"})
    assert seen == [
        {"AWS_DEFAULT_REGION": "eu-west-3", "AWS_REGION": "eu-west-3", "CONSOLE_ORIGIN": "https://x.cloudfront.net"}
    ]
