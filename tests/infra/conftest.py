"""Infra fixtures: a moto server of this suite's own (never 4566) with the stacks created on it,
and the `chalice package` output."""

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


def create_stack(cfn: Any, name: str, template_name: str, parameters: dict[str, str]) -> dict[str, str]:
    cfn.create_stack(
        StackName=name,
        TemplateBody=(INFRA / template_name).read_text(),
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


@pytest.fixture(scope="session")
def aws(moto_url: str) -> Callable[[str], Any]:
    """boto3 clients for the suite's moto server, with dummy credentials, touching no global env."""
    session = boto3.Session(region_name=REGION, **CREDENTIALS)
    return lambda service: session.client(service, endpoint_url=moto_url)


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
    command = ["-m", "deploy", "up", "--stage", "dev", "--vpc-id", DRY_RUN_VPC, "--subnets", DRY_RUN_SUBNETS, "--dry-run"]
    done = subprocess.run(
        [sys.executable, *command, "--region", REGION], cwd=ROOT, env=env, check=False, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"the dry run failed:\n{done.stdout}\n{done.stderr}"
    return DryRun(done.stdout, ROOT / "build" / "deploy" / "dev" / "app" / "sam.json")


@pytest.fixture(scope="session")
def packaged_dev(dry_run: DryRun) -> dict[str, Any]:
    """The dev stage's app template: `chalice package --merge-template`, as the dry run wrote it."""
    return dry_run.template
