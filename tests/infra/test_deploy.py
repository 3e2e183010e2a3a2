"""`make deploy`: the dry run's template and package, and the steps in order on a moto server —
all offline (the CLI's own tests are in test_cli.py).

moto's CloudFormation answers 500 on Chalice's SAM template (DESIGN §9), so the app's stack is
checked up to its upload: its template, its parameters and the objects it names.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file

from deploy import app_template, console, image, prerequisites, rollout, store
from deploy.plan import DeployError, Outputs, Plan
from tests.infra.conftest import REGION, ROOT, DryRun, create_stack, template
from tests.infra.iam_policy import ACCOUNT, allows, load_policy

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS::")
IAM_VARIABLE = re.compile(r"\$\{aws:[A-Za-z]+\}")


def _strings(value: Any, inside_sub: bool = False) -> list[tuple[str, bool]]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, inside_sub or k == "Fn::Sub")]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v, inside_sub)]
    return [(value, inside_sub)] if isinstance(value, str) else []


def test_dry_run_template_passes_cfn_lint_with_no_placeholder_left(dry_run: DryRun) -> None:
    matches = lint_file(dry_run.template_path)
    assert not matches, "\n".join(str(m) for m in matches)
    # IAM resolves its own policy variables (${aws:PrincipalAccount} names the documents bucket
    # in the stage policies); any other `${` outside a Fn::Sub is a placeholder nobody filled.
    literal = [
        text
        for text, in_sub in _strings(dry_run.template["Resources"])
        if "${" in IAM_VARIABLE.sub("", text) and not in_sub
    ]
    assert not literal, literal


def test_dry_run_wires_every_runtime_output_the_executor_needs(dry_run: DryRun) -> None:
    sam = dry_run.template
    runtime_outputs = template("runtime.yaml")["Outputs"]
    for name in app_template.RUNTIME_OUTPUTS:
        assert name in runtime_outputs and name in sam["Parameters"], name
        # The app stack's parameter takes the runtime stack's output of the same name.
        assert f"ParameterKey={name},ParameterValue=<dynavera-dev-runtime.{name}>" in dry_run.stdout, name
    executor = sam["Resources"]["RunExecutions"]["Properties"]
    assert executor["Environment"]["Variables"]["MCP_AGENT_URL"] == {"Ref": "RuntimeUrl"}
    assert executor["Environment"]["Variables"]["DYNAVERA_RUNTIME_SECRET_ARN"] == {"Ref": "RuntimeSecretArn"}
    assert executor["VpcConfig"]["SubnetIds"] == {"Ref": "LambdaSubnetIds"}
    assert executor["VpcConfig"]["SecurityGroupIds"] == [{"Ref": "LambdaSecurityGroupId"}]
    others = [
        r["Properties"]
        for k, r in sam["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function" and k != "RunExecutions"
    ]
    assert others and not any(
        {"MCP_AGENT_URL", "DYNAVERA_RUNTIME_SECRET_ARN"} & set(f["Environment"]["Variables"]) for f in others
    )
    assert not any("VpcConfig" in f for f in others)


def test_dry_run_prints_the_rollout_in_order_and_calls_no_aws(dry_run: DryRun) -> None:
    commands = [line.strip()[2:] for line in dry_run.stdout.splitlines() if line.strip().startswith("$ ")]
    expected = [
        "aws cloudformation create-change-set --stack-name dynavera-dev-data",
        "aws cloudformation create-change-set --stack-name dynavera-dev-registry",
        "docker build",
        "docker push",
        "aws cloudformation create-change-set --stack-name dynavera-dev-runtime",
        "aws cloudformation create-change-set --stack-name dynavera-dev-store",
        "chalice package --stage dev --merge-template",
        "aws cloudformation package",
        "aws cloudformation create-change-set --stack-name dynavera-dev-app",
    ]
    positions = [next(i for i, c in enumerate(commands) if step in c) for step in expected]
    assert positions == sorted(positions), commands
    assert f"ParameterKey=ImageTag,ParameterValue={image.content_tag()}" in dry_run.stdout
    assert "REST API" in dry_run.stdout and "WebSocket" in dry_run.stdout and "Console" in dry_run.stdout


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_function_of_the_package_may_write_its_own_log_group(stage: str, dry_run: DryRun) -> None:
    import app as app_module

    policy = load_policy(stage)
    names = [f.name for f in app_template.functions(app_module.app, stage)]
    if stage == "dev":
        packaged = [
            r["Properties"]["FunctionName"]
            for r in dry_run.template["Resources"].values()
            if r["Type"] == "AWS::Serverless::Function"
        ]
        assert sorted(packaged) == sorted(names)
    assert f"dynavera-{stage}" in names, "the REST API's function has no suffix"
    for name in names:
        stream = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{name}:log-stream:2026/11/26/[$LATEST]abc"
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            assert allows(policy, action, stream), (name, action)
    other = "prod" if stage == "dev" else "dev"
    assert not allows(
        policy,
        "logs:PutLogEvents",
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/dynavera-{other}:log-stream:x",
    )


def test_the_lambda_package_holds_the_contract_and_imports_from_itself(dry_run: DryRun, tmp_path: Path) -> None:
    with zipfile.ZipFile(dry_run.template_path.parent / "deployment.zip") as package:
        names = package.namelist()
        package.extractall(tmp_path)
    assert "contract/__init__.py" in names and "chalicelib/contract.py" not in names
    assert not (ROOT / "vendor" / "contract").exists(), "the copy is the package's, not the checkout's"
    # The unpacked package alone on the path (the venv gives the dependencies, as the zip's own would).
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    probe = "import app, contract; print(contract.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", probe], check=False, cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "contract" / "__init__.py")


def test_image_tag_follows_the_content_of_the_build_context(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("__pycache__/\n*.pyc\n")
    (tmp_path / "server.py").write_text("print('a')\n")
    (tmp_path / "contract").mkdir()
    (tmp_path / "contract" / "__init__.py").write_text("A = 1\n")
    named = {"contract": tmp_path / "contract"}
    first = image.content_tag(tmp_path, named)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "server.cpython-311.pyc").write_bytes(b"\0")
    assert image.content_tag(tmp_path, named) == first, "ignored files must not change the tag"
    (tmp_path / "server.py").write_text("print('b')\n")
    second = image.content_tag(tmp_path, named)
    assert second != first
    (tmp_path / "contract" / "__init__.py").write_text("A = 2\n")
    assert image.content_tag(tmp_path, named) != second, "the contract is part of the image"


# --- the steps, in order, on the suite's moto server -------------------------------------------


class Commands:
    """Records the local commands (docker) a rollout runs instead of running them."""

    def __init__(self) -> None:
        self.ran: list[list[str]] = []

    def __call__(self, command: Sequence[str], cwd: Path, stdin: str | None, env: dict[str, str]) -> None:
        self.ran.append(list(command))


@pytest.fixture(scope="module")
def rolled_out(aws: Callable[[str], Any], dry_run: DryRun) -> dict[str, Any]:
    """Data, registry, image and runtime steps of stage `deploytest`, as `rollout.up` runs them."""
    ec2 = aws("ec2")
    vpc_id = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = sorted(
        s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    )[:2]
    commands = Commands()
    plan = Plan(stage="deploytest", region=REGION, aws=aws, poll_seconds=1, run_command=commands, yes=True)
    steps = rollout.Rollout(vpc_id, subnets, {"RuntimeSize": "1vCPU-2GB"})
    prerequisites.check_identity(plan)
    rollout.deploy_data(plan, steps)
    rollout.deploy_registry(plan, steps)
    rollout.publish_runtime_image(plan, steps)
    rollout.deploy_runtime(plan, steps)
    return {
        "plan": plan,
        "commands": commands,
        "tag": steps.image_tag,
        "vpc_id": vpc_id,
        "subnets": subnets,
        "rollout": steps,
    }


def test_rollout_creates_data_registry_and_runtime_stacks_in_order(
    aws: Callable[[str], Any], rolled_out: dict[str, Any]
) -> None:
    cfn = aws("cloudformation")
    for part in ("data", "registry", "runtime"):
        (stack,) = cfn.describe_stacks(StackName=f"dynavera-deploytest-{part}")["Stacks"]
        # UPDATE_COMPLETE on moto: the conftest's ChangeSetsKept applies each change set again.
        assert stack["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE"), part
    assert aws("dynamodb").describe_table(TableName="dynavera-deploytest-api-keys")["Table"]["TableStatus"] == "ACTIVE"
    created = sorted(cfn.describe_stacks()["Stacks"], key=lambda s: s["CreationTime"])
    order = [s["StackName"] for s in created if s["StackName"].startswith("dynavera-deploytest-")]
    assert order == ["dynavera-deploytest-data", "dynavera-deploytest-registry", "dynavera-deploytest-runtime"]


def test_image_is_built_and_pushed_with_the_registry_output_then_runs_in_the_runtime(
    aws: Callable[[str], Any], rolled_out: dict[str, Any]
) -> None:
    plan: Plan = rolled_out["plan"]
    uri = plan.stack_outputs("registry")["RepositoryUri"]
    ran = rolled_out["commands"].ran
    assert [c[:2] for c in ran] == [["docker", "login"], ["docker", "build"], ["docker", "push"]]
    assert ran[0][-1] == uri.split("/")[0]
    assert f"{uri}:{rolled_out['tag']}" in ran[1] and ran[2][-1] == f"{uri}:{rolled_out['tag']}"
    definition = aws("ecs").describe_task_definition(taskDefinition="dynavera-deploytest-runtime")["taskDefinition"]
    assert definition["containerDefinitions"][0]["image"] == f"{uri}:{rolled_out['tag']}"


def test_an_image_already_in_the_repository_is_not_built_or_pushed_again(
    aws: Callable[[str], Any], rolled_out: dict[str, Any]
) -> None:
    plan: Plan = rolled_out["plan"]
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "layers": []}
    )
    aws("ecr").put_image(
        repositoryName=plan.stack_outputs("registry")["RepositoryName"],
        imageManifest=manifest,
        imageTag=rolled_out["tag"],
    )
    again = Commands()
    plan.run_command = again
    rollout.publish_runtime_image(plan, rolled_out["rollout"])
    assert again.ran == []


def test_rerunning_a_step_with_nothing_changed_is_not_an_error(
    aws: Callable[[str], Any], rolled_out: dict[str, Any]
) -> None:
    plan: Plan = rolled_out["plan"]
    rollout.deploy_data(plan, rolled_out["rollout"])
    assert (
        aws("cloudformation")
        .describe_stacks(StackName="dynavera-deploytest-data")["Stacks"][0]["StackStatus"]
        .endswith("_COMPLETE")
    )


def test_runtime_outputs_become_the_app_stacks_parameters_and_its_package_is_uploaded(
    aws: Callable[[str], Any], rolled_out: dict[str, Any], dry_run: DryRun
) -> None:
    plan: Plan = rolled_out["plan"]
    runtime = plan.stack_outputs("runtime")
    # moto's CloudFormation drops AWS::SecretsManager::Secret, and so this output: stand in for it.
    secret = aws("secretsmanager").create_secret(Name="dynavera-deploytest-runtime-secret", SecretString="s" * 48)
    runtime.setdefault("RuntimeSecretArn", secret["ARN"])
    data = _with_documents_outputs(aws, plan)
    parameters = app_template.parameters(runtime, data, console_origin="")
    assert parameters["DocumentsBucketName"] == data["DocumentsBucketName"]
    assert parameters["LambdaSubnetIds"].split(",") == rolled_out["subnets"]
    assert parameters["LambdaSecurityGroupId"].startswith("sg-")
    assert parameters["RuntimeUrl"].startswith("http://") and parameters["RuntimeUrl"] == runtime["RuntimeUrl"]
    assert parameters["RuntimeSecretArn"] == runtime["RuntimeSecretArn"]
    declared = dry_run.template["Parameters"]
    assert set(parameters) <= set(declared)
    assert all("Default" in declared[name] for name in set(declared) - set(parameters))

    bucket = plan.stack_outputs("registry")["ArtifactBucketName"]
    url = app_template.upload(plan, dry_run.template_path, bucket)
    assert url is not None
    key = url.split(f"/{bucket}/", 1)[1]
    uploaded = json.loads(aws("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    code = {
        r["Properties"]["CodeUri"] for r in uploaded["Resources"].values() if r["Type"] == "AWS::Serverless::Function"
    }
    (code_uri,) = code
    zip_key = code_uri.removeprefix(f"s3://{bucket}/")
    stored = aws("s3").get_object(Bucket=bucket, Key=zip_key)["Body"].read()
    assert stored == (dry_run.template_path.parent / "deployment.zip").read_bytes()


def test_console_files_go_to_its_bucket_with_the_apis_urls_then_cloudfront_is_invalidated(
    aws: Callable[[str], Any], tmp_path: Path
) -> None:
    dist = tmp_path / "console" / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><div id=app></div>")
    (dist / "assets" / "index-3f9c2ab1.js").write_text("console.log(1)")
    bucket = "dynavera-consoletest-console"
    aws("s3").create_bucket(Bucket=bucket)
    origin = {"Id": "site", "DomainName": f"{bucket}.s3.amazonaws.com", "S3OriginConfig": {"OriginAccessIdentity": ""}}
    distribution = aws("cloudfront").create_distribution(
        DistributionConfig={
            "CallerReference": "consoletest",
            "Comment": "",
            "Enabled": True,
            "Origins": {"Quantity": 1, "Items": [origin]},
            "DefaultCacheBehavior": {
                "TargetOriginId": "site",
                "ViewerProtocolPolicy": "redirect-to-https",
                "MinTTL": 0,
            },
        }
    )["Distribution"]["Id"]
    commands = Commands()
    plan = Plan(stage="consoletest", region=REGION, aws=aws, poll_seconds=1, run_command=commands)
    outputs = Outputs("dynavera-consoletest-console", {"ConsoleBucketName": bucket, "DistributionId": distribution})
    api, ws = (
        "https://abc.execute-api.us-east-1.amazonaws.com/dev/",
        "wss://def.execute-api.us-east-1.amazonaws.com/dev/",
    )
    console.publish(plan, outputs, api, ws, source=tmp_path / "console")

    assert commands.ran == [["npm", "ci"], ["npm", "run", "build"]]
    s3 = aws("s3")
    # infra/console.yaml serves the bucket's console/ objects at /console/.
    config = s3.get_object(Bucket=bucket, Key="console/config.json")
    # The console reads these two names (console/src/api/types.ts, ConsoleConfig).
    assert json.loads(config["Body"].read()) == {"apiUrl": api.rstrip("/"), "wsUrl": ws.rstrip("/")}
    assert config["CacheControl"] == "no-cache"
    index = s3.head_object(Bucket=bucket, Key="console/index.html")
    assert (index["ContentType"], index["CacheControl"]) == ("text/html", "no-cache")
    asset = s3.head_object(Bucket=bucket, Key="console/assets/index-3f9c2ab1.js")
    assert asset["ContentType"] == "text/javascript" and "immutable" in asset["CacheControl"]
    invalidations = aws("cloudfront").list_invalidations(DistributionId=distribution)["InvalidationList"]
    assert invalidations["Quantity"] == 1


def _with_documents_outputs(aws: Callable[[str], Any], plan: Plan) -> Outputs:
    """The data stack's outputs, with a bucket and an ingest queue standing in for the documents
    bucket and queue while infra/data.yaml does not declare them yet (issue 15 adds them)."""
    data = plan.stack_outputs("data")
    if "DocumentsBucketName" not in data:
        bucket = f"dynavera-{plan.stage}-documents-standin"
        aws("s3").create_bucket(Bucket=bucket)
        data["DocumentsBucketName"] = bucket
    if "IngestQueueName" not in data:
        data["IngestQueueName"] = f"dynavera-{plan.stage}-ingest-standin"
        aws("sqs").create_queue(QueueName=data["IngestQueueName"])
    return data


def test_the_store_stack_is_created_in_the_runtimes_cluster_from_the_stacks_before_it(
    aws: Callable[[str], Any], rolled_out: dict[str, Any]
) -> None:
    plan: Plan = rolled_out["plan"]
    data = _with_documents_outputs(aws, plan)
    assert store.is_new(plan)
    parameters = store.parameters(plan, rolled_out["vpc_id"], rolled_out["subnets"], rolled_out["tag"])
    runtime = plan.stack_outputs("runtime")
    assert parameters["ClusterName"] == runtime["ClusterName"]
    assert parameters["RuntimeSecurityGroupId"] == runtime["RuntimeSecurityGroupId"]
    assert (parameters["DocumentsBucketName"], parameters["IngestQueueName"]) == (
        data["DocumentsBucketName"],
        data["IngestQueueName"],
    )
    assert parameters["ImageTag"] == rolled_out["tag"], "Chroma and the indexer run the runtime's image"
    assert "AlarmTopicArn" not in parameters, "no topic given: the template's default (none)"
    topic = "arn:aws:sns:us-east-1:123456789012:ops"
    assert (
        store.parameters(plan, rolled_out["vpc_id"], rolled_out["subnets"], rolled_out["tag"], topic)["AlarmTopicArn"]
        == topic
    )
    # As deploy_stack would, with what moto's CloudFormation cannot resolve taken out (conftest).
    created = create_stack(aws("cloudformation"), "dynavera-deploytest-store", "store.yaml", parameters)
    (service,) = aws("ecs").describe_services(cluster=runtime["ClusterName"], services=[created["IndexerServiceName"]])[
        "services"
    ]
    indexer = aws("ecs").describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    assert indexer["containerDefinitions"][0]["image"].endswith(f"/dynavera-deploytest-runtime:{rolled_out['tag']}")
    assert not store.is_new(plan), "a store deployed again keeps its index: no rebuild"


class EcsRunning:
    """moto's RunTask answers 500 on a task definition its CloudFormation made (it keeps no
    container memory), and moto runs no container: this stands in for ECS running one indexer
    task to its end with `exit_code`, recording what it was asked."""

    def __init__(self, exit_code: int = 0, failures: list[dict[str, str]] | None = None) -> None:
        self.exit_code, self.failures = exit_code, failures or []
        self.runs: list[dict[str, Any]] = []

    def run_task(self, **request: Any) -> dict[str, Any]:
        self.runs.append(request)
        tasks = [] if self.failures else [{"taskArn": "arn:aws:ecs:us-east-1:123456789012:task/c/rebuild"}]
        return {"tasks": tasks, "failures": self.failures}

    def get_waiter(self, name: str) -> Any:
        assert name == "tasks_stopped"
        return type("Stopped", (), {"wait": lambda self, **kwargs: None})()

    def describe_tasks(self, cluster: str, tasks: list[str]) -> dict[str, Any]:
        return {
            "tasks": [
                {
                    "taskArn": tasks[0],
                    "lastStatus": "STOPPED",
                    "containers": [{"name": "indexer", "exitCode": self.exit_code}],
                }
            ]
        }


def _store_plan(aws: Callable[[str], Any], ecs: EcsRunning, rolled_out: dict[str, Any]) -> Plan:
    plan = Plan(stage="deploytest", region=REGION, aws=lambda s: ecs if s == "ecs" else aws(s), poll_seconds=1)
    plan.outputs.update(rolled_out["plan"].outputs)
    plan.outputs["dynavera-deploytest-store"] = Outputs(
        "dynavera-deploytest-store", {"IndexerSecurityGroupId": "sg-0indexer"}
    )
    return plan


def test_a_new_store_has_its_index_rebuilt_by_one_indexer_task(
    aws: Callable[[str], Any], rolled_out: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    ecs = EcsRunning()
    store.rebuild_index(_store_plan(aws, ecs, rolled_out), rolled_out["subnets"])
    (run,) = ecs.runs
    assert run["cluster"] == rolled_out["plan"].stack_outputs("runtime")["ClusterName"]
    assert (run["taskDefinition"], run["launchType"]) == ("dynavera-deploytest-indexer", "FARGATE")
    assert run["overrides"] == {
        "containerOverrides": [{"name": "indexer", "command": ["python", "-m", "mcp_container.indexer", "rebuild"]}]
    }
    network = run["networkConfiguration"]["awsvpcConfiguration"]
    assert network == {
        "subnets": rolled_out["subnets"],
        "securityGroups": ["sg-0indexer"],
        "assignPublicIp": "DISABLED",
    }
    # The container's name is the template's, or ECS refuses the override.
    (container,) = template("store.yaml")["Resources"]["IndexerTaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert container["Name"] == store.INDEXER_CONTAINER
    assert "the index is rebuilt" in capsys.readouterr().out


def test_a_rebuild_that_fails_or_cannot_start_stops_the_rollout_naming_where_to_look(
    aws: Callable[[str], Any], rolled_out: dict[str, Any]
) -> None:
    with pytest.raises(DeployError, match="/dynavera/deploytest/indexer"):
        store.rebuild_index(_store_plan(aws, EcsRunning(exit_code=1), rolled_out), rolled_out["subnets"])
    refused = EcsRunning(failures=[{"reason": "RESOURCE:ENI"}])
    with pytest.raises(DeployError, match="RESOURCE:ENI"):
        store.rebuild_index(_store_plan(aws, refused, rolled_out), rolled_out["subnets"])


def test_dry_run_wires_the_store_from_the_runtime_and_data_stacks(dry_run: DryRun) -> None:
    (line,) = [
        line for line in dry_run.stdout.splitlines() if "create-change-set --stack-name dynavera-dev-store" in line
    ]
    wired = {
        "ClusterName": "runtime",
        "RuntimeSecurityGroupId": "runtime",
        "DocumentsBucketName": "data",
        "IngestQueueName": "data",
    }
    for name, stack in wired.items():
        assert f"ParameterKey={name},ParameterValue=<dynavera-dev-{stack}.{name}>" in line, name
    assert f"ParameterKey=ImageTag,ParameterValue={image.content_tag()}" in line and "CAPABILITY_IAM" in line
    # A dry run cannot tell whether the store is new: it shows the rebuild a new one gets.
    assert (
        "aws ecs run-task --cluster '<dynavera-dev-runtime.ClusterName>' --task-definition dynavera-dev-indexer"
        in dry_run.stdout
    )


def test_dry_run_hands_the_data_stacks_bucket_to_every_function(dry_run: DryRun) -> None:
    # Its name carries the account id, which no stage config holds: the Lambdas get it exactly.
    (line,) = [
        line for line in dry_run.stdout.splitlines() if "create-change-set --stack-name dynavera-dev-app" in line
    ]
    assert "ParameterKey=DocumentsBucketName,ParameterValue=<dynavera-dev-data.DocumentsBucketName>" in line
    functions = [r for r in dry_run.template["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    assert functions
    for function in functions:
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["DOCUMENTS_BUCKET"] == {"Ref": "DocumentsBucketName"}, function["Properties"]["FunctionName"]
        assert variables["DYNAVERA_STAGE"] == "dev", "the merge keeps the stage's own variables"


def test_a_demo_deploy_uploads_the_shipped_corpus_through_the_api(capsys: pytest.CaptureFixture[str]) -> None:
    from deploy import demo

    demo.upload_corpus(Plan(stage="dev", region=REGION, dry_run=True, aws=lambda service: None))
    commands = [line.strip()[2:] for line in capsys.readouterr().out.splitlines() if line.strip().startswith("$ ")]
    assert commands[0].startswith("./dynavera keys create demo --stage dev")
    assert commands[1:] == [
        "./dynavera collections create fnirs",
        "./dynavera upload mcp_container/corpus --collection fnirs",
    ]
    assert sorted(demo.CORPUS.glob("*.md")), "the corpus ships with the repository"


def test_destroy_deletes_every_stack_of_the_stage_in_reverse_order(
    aws: Callable[[str], Any], rolled_out: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    plan: Plan = rolled_out["plan"]
    bucket = plan.stack_outputs("registry")["ArtifactBucketName"]
    rollout.down(plan)
    cfn = aws("cloudformation")
    assert not [
        s["StackName"] for s in cfn.describe_stacks()["Stacks"] if s["StackName"].startswith("dynavera-deploytest-")
    ]
    out = capsys.readouterr().out
    deleted = [
        line.split("--stack-name ")[1].rsplit("-", 1)[1]
        for line in out.splitlines()
        if "cloudformation delete-stack" in line
    ]
    # What is kept is said, so the next deploy's adoption is no surprise.
    for kept in ("AgentsTable", "ExecutionsTable", "EventsTable", "ApiKeysTable"):
        assert f"dynavera-deploytest-data: {kept} (AWS::DynamoDB::Table)" in out
    assert deleted == ["app", *(["console"] if console.present() else []), "store", "runtime", "registry", "data"]
    assert bucket not in {b["Name"] for b in aws("s3").list_buckets()["Buckets"]}


def test_the_console_origin_allowed_by_cors_is_scheme_and_host_only() -> None:
    from deploy.console import origin

    assert origin("https://d111111abcdef8.cloudfront.net/index.html") == "https://d111111abcdef8.cloudfront.net"
    assert origin("https://d111111abcdef8.cloudfront.net/") == "https://d111111abcdef8.cloudfront.net"
    assert origin("") == ""
