"""Infra fixtures: a moto server of this suite's own (never 4566) with the stacks created on it
(as far as moto's CloudFormation can), and the `chalice package` output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from local.endpoint import load_template

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
EVENTS = ROOT / "events"
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def template(name: str) -> dict[str, Any]:
    return load_template(INFRA / name)


def substitute(value: str, parameters: dict[str, str]) -> str:
    """A `!Sub` string with the given parameters filled in (enough for the names here)."""
    return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: parameters.get(m.group(1), m.group(0)), value)


def chalice_config() -> dict[str, Any]:
    return json.loads((ROOT / ".chalice" / "config.json").read_text())


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


# Resource types moto's CloudFormation drops (DESIGN §9) that other resources name: a property
# naming one cannot be resolved there, so moto gets the template without them, and the tests
# assert those parts from the template itself.
MOTO_UNRESOLVED = ("AWS::ServiceDiscovery::",)


def _names(value: Any) -> set[str]:
    """The resources a piece of a decoded template names with Ref or Fn::GetAtt."""
    if isinstance(value, list):
        return {name for item in value for name in _names(item)}
    if not isinstance(value, dict):
        return set()
    found = {name for item in value.values() for name in _names(item)}
    if isinstance(value.get("Ref"), str):
        found.add(value["Ref"])
    if "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        found.add(target[0] if isinstance(target, list) else str(target).split(".")[0])
    return found


def moto_template_body(template_name: str) -> str:
    """The template as moto can create it: without MOTO_UNRESOLVED resources and what names them."""
    from cfnlint.decode.cfn_yaml import loads

    decoded = loads((INFRA / template_name).read_text())
    resources = decoded["Resources"]
    dropped = {name for name, r in resources.items() if r["Type"].startswith(MOTO_UNRESOLVED)}
    if not dropped:
        return (INFRA / template_name).read_text()
    for name in dropped:
        del resources[name]
    for resource in resources.values():
        properties = resource.get("Properties", {})
        for key in [k for k, v in properties.items() if _names(v) & dropped]:
            del properties[key]
    return json.dumps(decoded)


def seed_sample_run() -> dict[str, str]:
    """The agent and the pending execution the sample SQS record (events/) names, in the bound
    tables; its message returned."""
    from chalicelib.clock import now_iso
    from chalicelib.models import Agent, Execution

    message = json.loads(load_event("sqs_run_execution.json")["Records"][0]["body"])
    stamp = now_iso()
    Agent(
        message["agent_id"], user_id=message["user_id"], name="fNIRS helper", created_at=stamp, updated_at=stamp
    ).save()
    Execution(
        message["execution_id"],
        agent_id=message["agent_id"],
        user_id=message["user_id"],
        status="pending",
        input_data={"query": "What is fNIRS?"},
        created_at=stamp,
    ).save()
    return message


def create_stack(cfn: Any, name: str, template_name: str, parameters: dict[str, str]) -> dict[str, str]:
    cfn.create_stack(
        StackName=name,
        TemplateBody=moto_template_body(template_name),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    cfn.get_waiter("stack_create_complete").wait(StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class ChangeSetsKept:
    """moto's CloudFormation runs a change set's resources but keeps neither its template nor its
    outputs, so the stack it leaves has none: after executing one, the same request is applied
    again as the update moto does keep (a stand-in for what AWS does in one step)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._requests: dict[str, dict[str, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def create_change_set(self, **request: Any) -> dict[str, Any]:
        created = self._client.create_change_set(**request)
        self._requests[created["Id"]] = request
        return created

    def execute_change_set(self, ChangeSetName: str) -> dict[str, Any]:
        answer = self._client.execute_change_set(ChangeSetName=ChangeSetName)
        request = self._requests.pop(ChangeSetName)
        kept = ("StackName", "TemplateBody", "TemplateURL", "Parameters", "Capabilities", "Tags")
        self._client.update_stack(**{k: v for k, v in request.items() if k in kept})
        return answer


@pytest.fixture(scope="session")
def aws(moto_url: str) -> Callable[[str], Any]:
    """boto3 clients for the suite's moto server, with dummy credentials, touching no global env."""
    session = boto3.Session(region_name=REGION, **CREDENTIALS)

    def client(service: str) -> Any:
        made = session.client(service, endpoint_url=moto_url)
        return ChangeSetsKept(made) if service == "cloudformation" else made

    return client


@pytest.fixture(scope="session")
def data_stack(aws: Callable[[str], Any]) -> dict[str, Any]:
    stage = "infratest"
    outputs = create_stack(aws("cloudformation"), f"dynavera-{stage}-data", "data.yaml", {"Stage": stage})
    return {"stage": stage, "outputs": outputs}


@pytest.fixture(scope="session")
def runtime_stacks(aws: Callable[[str], Any]) -> dict[str, Any]:
    """registry.yaml and runtime.yaml created in moto's default VPC, on two of its subnets."""
    stage = "infratest"
    ec2 = aws("ec2")
    vpc_id = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    subnet_ids = sorted(s["SubnetId"] for s in subnets)[:2]
    cfn = aws("cloudformation")
    registry = create_stack(cfn, f"dynavera-{stage}-registry", "registry.yaml", {"Stage": stage})
    runtime = create_stack(
        cfn,
        f"dynavera-{stage}-runtime",
        "runtime.yaml",
        {"Stage": stage, "VpcId": vpc_id, "PrivateSubnetIds": ",".join(subnet_ids), "ImageTag": "3f9c2ab"},
    )
    return {
        "stage": stage,
        "vpc_id": vpc_id,
        "subnet_ids": subnet_ids,
        "image_tag": "3f9c2ab",
        "registry": registry,
        "runtime": runtime,
    }


@pytest.fixture(scope="session")
def store_stack(aws: Callable[[str], Any], runtime_stacks: dict[str, Any]) -> dict[str, Any]:
    """store.yaml created into the runtime stack's cluster, with a bucket and an ingest queue of
    its own standing for the data stack's (infra/data.yaml holds them; issue 15)."""
    stage = runtime_stacks["stage"]
    bucket, queue = f"dynavera-{stage}-store-documents", f"dynavera-{stage}-store-ingest"
    aws("s3").create_bucket(Bucket=bucket)
    queue_url = aws("sqs").create_queue(QueueName=queue)["QueueUrl"]
    parameters = {
        "Stage": stage,
        "VpcId": runtime_stacks["vpc_id"],
        "PrivateSubnetIds": ",".join(runtime_stacks["subnet_ids"]),
        "ImageTag": runtime_stacks["image_tag"],
        "ClusterName": runtime_stacks["runtime"]["ClusterName"],
        "RuntimeSecurityGroupId": runtime_stacks["runtime"]["RuntimeSecurityGroupId"],
        "DocumentsBucketName": bucket,
        "IngestQueueName": queue,
    }
    outputs = create_stack(aws("cloudformation"), f"dynavera-{stage}-store", "store.yaml", parameters)
    return {**runtime_stacks, "parameters": parameters, "store": outputs, "queue_url": queue_url}


DRY_RUN_VPC = "vpc-0123456789abcdef0"
DRY_RUN_SUBNETS = "subnet-0aaaaaaaaaaaaaaa1,subnet-0bbbbbbbbbbbbbbb2"


@dataclass
class DryRun:
    stdout: str
    template_path: Path

    @property
    def template(self) -> dict[str, Any]:
        return json.loads(self.template_path.read_text())


@pytest.fixture(scope="session")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> DryRun:
    """`make deploy STAGE=dev … DRY_RUN=1` as a user runs it: what it prints, the template it writes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path_factory.mktemp("home")), PYTHONPATH=str(ROOT))
    command = [
        "-m",
        "deploy",
        "up",
        "--stage",
        "dev",
        "--vpc-id",
        DRY_RUN_VPC,
        "--subnets",
        DRY_RUN_SUBNETS,
        "--dry-run",
    ]
    done = subprocess.run(
        [sys.executable, *command, "--region", REGION],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"the dry run failed:\n{done.stdout}\n{done.stderr}"
    return DryRun(done.stdout, ROOT / "build" / "deploy" / "dev" / "app" / "sam.json")


@pytest.fixture(scope="session")
def packaged_dev(dry_run: DryRun) -> dict[str, Any]:
    """The dev stage's app template: `chalice package --merge-template`, as the dry run wrote it."""
    return dry_run.template
