"""Infra fixtures: a moto server of this suite's own (never 4566) with the stacks created on it,
the `chalice package` output, and the Lambda handlers run in-process on moto's mocks."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from botocore.client import BaseClient
from moto import mock_aws
from moto.server import ThreadedMotoServer

from local.endpoint import load_template
from local.lambda_runtime import LambdaContext
from tests.infra import code_calls
from tests.infra.iam_policy import allows, load_policy, request_arn

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


# --- the handlers, in-process, on moto's mocks -------------------------------------------------

SAMPLE_USER = "sample-user"


@dataclass
class RecordedCall:
    service: str
    operation: str
    params: dict[str, Any]
    endpoint_url: str


@dataclass
class Lambda:
    """The Chalice app's handlers, invoked as Lambda invokes them, with their AWS calls recorded."""

    app_module: Any
    stage: str
    calls: list[RecordedCall] = field(default_factory=list)  # those of the last invocation
    recording: bool = False

    def invoke(self, handler: str, event: dict[str, Any]) -> Any:
        target = getattr(self.app_module, handler)
        self.calls.clear()
        self.recording = True
        try:
            return target(event, LambdaContext(function_name=f"dynavera-{self.stage}-{handler}"))
        finally:
            self.recording = False

    def denied_calls(self) -> list[str]:
        """Calls the stage's hand-written policy would refuse in AWS."""
        policy = load_policy(self.stage)
        denied = []
        for call in self.calls:
            action = "execute-api:ManageConnections" if call.service == "apigatewaymanagementapi" else f"{call.service}:{call.operation}"
            arn = request_arn(call.service, call.operation, call.params, call.endpoint_url, REGION)
            if not allows(policy, action, arn):
                denied.append(f"{action} on {arn}")
        return denied


def _forget_cached_clients() -> None:
    """Drop the clients the Lambda code keeps per container, so the next ones are moto's."""
    from chalicelib import aws as aws_clients
    from chalicelib import runtime_client

    for module in (aws_clients, runtime_client):
        for value in vars(module).values():
            if hasattr(value, "cache_clear"):
                value.cache_clear()
    for model in code_calls.models().values():
        model._connection = None  # PynamoDB keeps one connection (and its endpoint) per model


@pytest.fixture
def lambda_handlers(monkeypatch: pytest.MonkeyPatch) -> Iterator[Lambda]:
    """The app imported as Lambda imports it, its tables and queue made from infra/data.yaml."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    import app as app_module
    from chalicelib.settings import settings

    if settings.stage != "dev":
        pytest.fail(f"The sample events are dev-stage events, but app was imported for stage {settings.stage!r}.")
    with mock_aws():
        _forget_cached_clients()
        create_stack(boto3.client("cloudformation", region_name=REGION), "dynavera-dev-data", "data.yaml", {"Stage": "dev"})
        handlers = Lambda(app_module, settings.stage)
        real_call = BaseClient._make_api_call

        def recording_call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            if handlers.recording:
                service = client.meta.service_model.service_name
                handlers.calls.append(RecordedCall(service, operation, dict(params), client.meta.endpoint_url))
            return real_call(client, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", recording_call)
        yield handlers
        monkeypatch.undo()
        _forget_cached_clients()


def seed_api_key(key: str, user_id: str = SAMPLE_USER) -> None:
    """An API key row as the keys command writes it: only the key's sha256 is stored."""
    from chalicelib.clock import now_iso
    from chalicelib.models import ApiKey

    ApiKey(hashlib.sha256(key.encode()).hexdigest(), user_id=user_id, created_at=now_iso()).save()


class _RuntimeHandler(BaseHTTPRequestHandler):
    """The runtime's HTTP contract (DESIGN §6), answering one scripted run."""

    script: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        self._answer(200, "application/json", [{"status": "ok", "model": "fake", "embedder": "fake", "collections": []}])

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/execute":
            self._answer(200, "application/x-ndjson", self.script)
        else:
            self._answer(200, "application/json", [{}])

    def _answer(self, status: int, content_type: str, items: list[dict[str, Any]]) -> None:
        body = "".join(json.dumps(item) + "\n" for item in items).encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def scripted_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
    """A stand-in runtime on a free port; the executor's settings point at it."""
    from chalicelib import runtime_client

    server = ThreadingHTTPServer(("127.0.0.1", 0), _RuntimeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(runtime_client, "settings", replace(runtime_client.settings, mcp_agent_url=url))
    runtime_client._client.cache_clear()

    def script(events: list[dict[str, Any]]) -> None:
        _RuntimeHandler.script = events

    yield script
    server.shutdown()
    server.server_close()
    runtime_client._client.cache_clear()
