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


@pytest.fixture(scope="session")
def packaged_dev(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`chalice package --stage dev`, run from the repository root as a user runs it."""
    out = tmp_path_factory.mktemp("chalice-package")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "chalice"), "package", "--stage", "dev", str(out)],
        cwd=ROOT,
        env={**os.environ, "AWS_DEFAULT_REGION": REGION},
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"chalice package failed:\n{done.stdout}\n{done.stderr}"
    return json.loads((out / "sam.json").read_text())




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


@pytest.fixture
def lambda_handlers(monkeypatch: pytest.MonkeyPatch) -> Iterator[Lambda]:
    """The app's handlers bound to the dev stage on moto's in-process mocks, its tables and queue
    made from infra/data.yaml; the settings bound before are bound again afterwards."""
    import app as app_module
    from chalicelib.settings import Settings, bind, current

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    before = current()
    settings = Settings.from_env({"DYNAVERA_STAGE": "dev", "AWS_DEFAULT_REGION": REGION})
    with mock_aws():
        bind(settings)
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        create_stack(cloudformation, "dynavera-dev-data", "data.yaml", {"Stage": "dev"})
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
    bind(before)


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
    from chalicelib.settings import bind, current

    server = ThreadingHTTPServer(("127.0.0.1", 0), _RuntimeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    bound = current()
    bind(replace(bound, mcp_agent_url=url))

    def script(events: list[dict[str, Any]]) -> None:
        _RuntimeHandler.script = events

    yield script
    server.shutdown()
    server.server_close()
    bind(bound)
