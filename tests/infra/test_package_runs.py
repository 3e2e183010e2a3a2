"""The Lambda package runs as Lambda runs it: built as `make deploy` builds it (the deploy code's
`chalice package`, dry run), unzipped, and every function invoked with the sample events in
events/ by a fresh interpreter holding only the zip and boto3 on its path, with the stage's
environment (tracing on, AWS_LAMBDA_FUNCTION_NAME set). Its data calls go to the suite's moto
server; the runtime and the @connections API are the scripted stand-ins the handler tests use.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.settings import Settings
from chalicelib.wiring import wire
from deploy import app_template
from deploy.plan import Plan
from local import endpoint
from tests.fixtures.scripted import Connections, ScriptedRuntime
from tests.infra.conftest import REGION, load_event, seed_sample_run

BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")
CONSOLE_ORIGIN = "https://d1a2b3c4d5e6f7.cloudfront.net"
SAMPLE_KEY = load_event("ws_connect.json")["queryStringParameters"]["token"]
# What the Lambda Python 3.11 runtime has beside the function's code.
RUNTIME_SDK = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")
# A zipped package over this would mean something heavy slipped in (measured: ~19.3 MB).
MAX_ZIP_BYTES = 25 * 1024 * 1024


@dataclass
class Package:
    template: dict[str, Any]
    zip_path: Path
    task_root: Path


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    """The dev stage's package and template, with a console, as `make deploy` writes them."""
    build = tmp_path_factory.mktemp("deploy")
    plan = Plan(stage="dev", region=REGION, dry_run=True, aws=lambda service: None, build_dir=build)
    template_path = app_template.package(plan, CONSOLE_ORIGIN)
    task_root = tmp_path_factory.mktemp("task")
    zip_path = template_path.with_name("deployment.zip")
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(task_root)
    return Package(json.loads(template_path.read_text()), zip_path, task_root)


@dataclass
class Invocation:
    result: Any
    traced: bool


class Lambda:
    """Invokes the package's functions, each in a fresh interpreter as a new container would."""

    def __init__(self, package: Package, sdk: Path, environment: Callable[[dict[str, Any]], dict[str, str]]) -> None:
        self.package, self.sdk, self.environment = package, sdk, environment

    def invoke(self, logical_id: str, *events: dict[str, Any], tmp: Path) -> list[Invocation]:
        properties = self.package.template["Resources"][logical_id]["Properties"]
        daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        daemon.bind(("127.0.0.1", 0))
        daemon.setblocking(False)
        env = {
            "PATH": os.environ["PATH"],
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": str(self.package.task_root),
            "_HANDLER": properties["Handler"],
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
            "AWS_LAMBDA_FUNCTION_NAME": properties["FunctionName"],
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(properties.get("MemorySize", 128)),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{properties['FunctionName']}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/30/[$LATEST]0123456789abcdef",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            # Set by Lambda when the function's Tracing is Active: the X-Ray daemon's address.
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            **self.environment(properties["Environment"]["Variables"]),
        }
        assert properties["Tracing"] == "Active"
        events_path = tmp / f"{logical_id}-events.json"
        events_path.write_text(json.dumps(list(events)))
        done = subprocess.run(
            [sys.executable, "-I", "-S", str(BOOTSTRAP), str(self.sdk), str(events_path)],
            env=env,
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        answers = json.loads(done.stdout.strip().splitlines()[-1])
        assert "init_error" not in answers[0], answers[0]["init_error"]
        segments = _datagrams(daemon)
        daemon.close()
        for answer in answers:
            assert "error" not in answer, answer["error"]
        return [Invocation(a["result"], any(a["trace_id"] in s for s in segments)) for a in answers]


def _datagrams(daemon: socket.socket) -> list[str]:
    """What the function sent the X-Ray daemon; sent before it exited, so already here."""
    received = []
    while True:
        try:
            received.append(daemon.recv(65536).decode())
        except BlockingIOError:
            return received


@pytest.fixture(scope="session")
def runtime_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """boto3 and what it needs, alone in a folder, as the Lambda runtime provides them."""
    import boto3

    site = Path(boto3.__file__).resolve().parent.parent
    sdk = tmp_path_factory.mktemp("runtime-sdk")
    for name in RUNTIME_SDK:
        (sdk / name).symlink_to(site / name)
    return sdk


@dataclass
class Stage:
    name: str
    settings: Settings
    runtime: ScriptedRuntime
    connections: Connections
    secret: str


@pytest.fixture(scope="session")
def stage(moto_url: str) -> Iterator[Stage]:
    """A stage of its own on the suite's moto server, its runtime secret in Secrets Manager."""
    name = f"pkg{uuid.uuid4().hex[:6]}"
    bucket = endpoint.provision(name, moto_url)["DocumentsBucketName"]
    secret = uuid.uuid4().hex
    arn = endpoint.client("secretsmanager", moto_url).create_secret(Name=f"{name}-runtime", SecretString=secret)["ARN"]
    runtime, connections = ScriptedRuntime(), Connections()
    env = {
        **endpoint.aws_environment(moto_url, name),
        "MCP_AGENT_URL": runtime.url,
        "DYNAVERA_RUNTIME_SECRET_ARN": arn,
        "WEBSOCKET_ENDPOINT": f"{connections.url}/dev",
        "DOCUMENTS_BUCKET": bucket,
    }
    yield Stage(name, Settings.from_env(env), runtime, connections, secret)
    runtime.close()
    connections.close()


@pytest.fixture(scope="session")
def lambdas(package: Package, runtime_sdk: Path, stage: Stage, moto_url: str) -> Lambda:
    parameters = {
        "RuntimeUrl": stage.runtime.url,
        "RuntimeSecretArn": stage.settings.runtime_secret_arn,
        "ConsoleOrigin": CONSOLE_ORIGIN,
        "DocumentsBucketName": stage.settings.documents_bucket,
    }

    def environment(variables: dict[str, Any]) -> dict[str, str]:
        resolved = {k: parameters[v["Ref"]] if isinstance(v, dict) else v for k, v in variables.items()}
        # The dev stage's names, moved to this test's own stage on the suite's endpoint.
        renamed = {k: v.replace("dynavera-dev-", f"dynavera-{stage.name}-") for k, v in resolved.items()}
        return {
            **renamed,
            "DYNAVERA_STAGE": stage.name,
            "AWS_ENDPOINT_URL": moto_url,
            "WEBSOCKET_ENDPOINT": stage.settings.websocket_endpoint or "",
        }

    return Lambda(package, runtime_sdk, environment)


@contextmanager
def bound(settings: Settings) -> Iterator[None]:
    """chalicelib pointed at the stage while a test writes its rows, then back at this process's
    own settings (the ones `import app` wired)."""
    import app

    wire(settings)
    try:
        yield
    finally:
        wire(app.settings)


def _seed_key(stage: Stage) -> str:
    from chalicelib.clock import now_iso
    from chalicelib.models import ApiKey

    user = f"user-{uuid.uuid4().hex[:6]}"
    with bound(stage.settings):
        ApiKey(hashlib.sha256(SAMPLE_KEY.encode()).hexdigest(), user_id=user, created_at=now_iso()).save()
    return user


def test_package_is_small_and_brings_the_tracer(package: Package) -> None:
    assert package.zip_path.stat().st_size < MAX_ZIP_BYTES
    assert (package.task_root / "aws_xray_sdk").is_dir()
    for heavy in ("torch", "chromadb", "gpt4all", "numpy", "boto3"):
        assert not (package.task_root / heavy).exists(), heavy


def test_rest_function_answers_health_and_a_keyed_request(lambdas: Lambda, stage: Stage, tmp_path: Path) -> None:
    from chalicelib import collections
    from chalicelib.models import Agent

    user = _seed_key(stage)
    named = json.loads(load_event("rest_post_agents.json")["body"])["config"]["collection"]
    with bound(stage.settings):  # the sample agent names its owner's collection
        collections.create(user, {"name": named})
    health, created, refused = lambdas.invoke(
        "APIHandler",
        load_event("rest_get_health.json"),
        load_event("rest_post_agents.json"),
        {**load_event("rest_post_agents.json"), "headers": {"Authorization": "Bearer dv_unknown"}},
        tmp=tmp_path,
    )
    assert (health.result["statusCode"], json.loads(health.result["body"])) == (200, {"status": "ok"})
    assert created.result["statusCode"] == 201, created.result
    agent = json.loads(created.result["body"])
    with bound(stage.settings):
        assert Agent.get(agent["agent_id"]).user_id == user
    assert refused.result["statusCode"] == 401
    assert json.loads(refused.result["body"])["error"]["code"]
    # The console may read every answer, a refusal too, and only from its own origin.
    for answer in (health, created, refused):
        assert answer.result["headers"]["Access-Control-Allow-Origin"] == CONSOLE_ORIGIN
        assert answer.traced, "no X-Ray segment of this invocation reached the daemon"


def test_websocket_functions_connect_with_a_key_refuse_without_answer_and_forget(
    lambdas: Lambda, stage: Stage, tmp_path: Path
) -> None:
    from chalicelib.models import Connection

    _seed_key(stage)
    connect = load_event("ws_connect.json")
    connection_id = connect["requestContext"]["connectionId"]
    without = json.loads(json.dumps(connect))
    without["requestContext"]["connectionId"] = "no-token-connection"
    del without["queryStringParameters"], without["multiValueQueryStringParameters"]
    wrong = json.loads(json.dumps(without))
    wrong["queryStringParameters"] = {"token": "dv_not-a-key"}
    accepted, refused, unknown = lambdas.invoke("WebsocketConnect", connect, without, wrong, tmp=tmp_path)
    assert accepted.result["statusCode"] == 200
    assert refused.result["statusCode"] == 401 and json.loads(refused.result["body"])["error"]["code"]
    assert unknown.result["statusCode"] == 401
    with bound(stage.settings):
        assert Connection.count(connection_id) == 1
        assert Connection.count("no-token-connection") == 0

    (ping,) = lambdas.invoke("WebsocketMessage", load_event("ws_message_ping.json"), tmp=tmp_path)
    assert stage.connections.take(connection_id) == [{"type": "pong"}]
    (gone,) = lambdas.invoke("WebsocketDisconnect", load_event("ws_disconnect.json"), tmp=tmp_path)
    with bound(stage.settings):
        assert Connection.count(connection_id) == 0
    assert accepted.traced and ping.traced and gone.traced


def test_executor_runs_the_sqs_record_with_the_secret_it_reads_from_secrets_manager(
    lambdas: Lambda, stage: Stage, tmp_path: Path
) -> None:
    from chalicelib.events import list_events
    from chalicelib.models import Execution

    event = load_event("sqs_run_execution.json")
    with bound(stage.settings):
        message = seed_sample_run()
    output = {"answer": "fNIRS measures blood oxygenation.", "sources": [], "usage": {"completion_tokens": 5}}
    stage.runtime.play({"type": "token", "text": output["answer"]}, {"type": "result", "output": output})
    (run,) = lambdas.invoke("RunExecutions", event, tmp=tmp_path)
    assert not (run.result or {}).get("batchItemFailures")
    assert run.traced
    (request,) = stage.runtime.requests
    assert request["headers"]["Authorization"] == f"Bearer {stage.secret}"
    with bound(stage.settings):
        execution = Execution.get(message["execution_id"], consistent_read=True)
        assert (execution.status, execution.output_data) == ("completed", output)
        events = list_events(message["execution_id"], 0, 100)[0]
    assert [e.event_type for e in events] == ["started", "token", "completed"]


def test_sweeper_fails_a_run_stuck_past_its_deadline(lambdas: Lambda, stage: Stage, tmp_path: Path) -> None:
    from chalicelib.clock import iso, now
    from chalicelib.models import Execution

    long_ago = iso(now() - timedelta(hours=3))
    execution_id = str(uuid.uuid4())
    with bound(stage.settings):
        Execution(
            execution_id,
            agent_id=str(uuid.uuid4()),
            user_id="sweep-user",
            status="running",
            input_data={"query": "stuck"},
            created_at=long_ago,
            started_at=long_ago,
        ).save()
    (sweep,) = lambdas.invoke("SweepStuckExecutions", load_event("scheduled_sweep.json"), tmp=tmp_path)
    assert sweep.result["swept"] >= 1 and sweep.traced
    with bound(stage.settings):
        assert Execution.get(execution_id, consistent_read=True).status == "failed"


def test_documents_sweeper_fails_an_upload_never_made(lambdas: Lambda, stage: Stage, tmp_path: Path) -> None:
    from chalicelib.clock import iso, now
    from chalicelib.models import Document

    long_ago = iso(now() - timedelta(hours=3))
    row = Document(
        str(uuid.uuid4()),
        str(uuid.uuid4()),
        user_id="sweep-user",
        filename="never.md",
        size=3,
        status="awaiting_upload",
        created_at=long_ago,
        updated_at=long_ago,
    )
    with bound(stage.settings):
        row.save()
    (sweep,) = lambdas.invoke("SweepStuckDocuments", load_event("scheduled_sweep.json"), tmp=tmp_path)
    assert sweep.result["swept"] >= 1 and sweep.traced
    with bound(stage.settings):
        assert Document.get(row.collection_id, row.document_id, consistent_read=True).error_code == "upload_expired"


def test_packaged_functions_hold_no_plaintext_secret(package: Package) -> None:
    for resource in package.template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            variables = resource["Properties"]["Environment"]["Variables"]
            assert "DYNAVERA_RUNTIME_SECRET" not in variables
            assert "resolve:secretsmanager" not in json.dumps(variables)


def test_packaged_rest_api_answers_the_consoles_preflight_on_every_path_and_only_for_it(package: Package) -> None:
    paths = package.template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    assert paths
    for path, methods in paths.items():
        assert "options" in methods, f"no preflight answer on {path}"
        preflight = methods["options"]["x-amazon-apigateway-integration"]
        headers = preflight["responses"]["default"]["responseParameters"]
        assert preflight["type"] == "mock"
        assert headers["method.response.header.Access-Control-Allow-Origin"] == f"'{CONSOLE_ORIGIN}'", path
        allowed = set(headers["method.response.header.Access-Control-Allow-Methods"].strip("'").split(","))
        assert {m.upper() for m in methods} <= allowed, path
        # The console sends its key and, on starts, an idempotency key.
        requested = headers["method.response.header.Access-Control-Allow-Headers"].strip("'").split(",")
        assert {"Authorization", "Content-Type", "Idempotency-Key"} <= set(requested), path


def test_every_function_waits_for_its_log_group_and_the_api_stages_log_their_requests(package: Package) -> None:
    resources = package.template["Resources"]
    for resource in resources.values():
        if resource["Type"] == "AWS::Serverless::Function":
            group = resources[resource["DependsOn"][0]]
            assert group["Properties"]["LogGroupName"] == f"/aws/lambda/{resource['Properties']['FunctionName']}"
    rest = resources["RestAPI"]["Properties"]
    assert rest["TracingEnabled"] is True
    websocket = resources["WebsocketAPIStage"]["Properties"]
    for setting, group in (
        (rest["AccessLogSetting"], "RestAccessLogs"),
        (websocket["AccessLogSettings"], "WebsocketAccessLogs"),
    ):
        assert setting["DestinationArn"] == {"Fn::GetAtt": [group, "Arn"]}
        assert "$context.requestId" in json.loads(setting["Format"]).values()
        assert resources[group]["Properties"]["RetentionInDays"] == {"Ref": "AccessLogRetentionDays"}


def test_executor_alone_may_read_the_runtime_secret_and_only_that_one(package: Package) -> None:
    resources = package.template["Resources"]
    policies = [r for r in resources.values() if r["Type"] == "AWS::IAM::Policy"]
    assert [p["Properties"]["Roles"] for p in policies] == [[{"Ref": "RunExecutionsRole"}]]
    (statement,) = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert statement["Resource"] == {"Ref": "RuntimeSecretArn"}
    assert app_template.SECRET_POLICY in resources["RunExecutions"]["DependsOn"]
    variables = resources["RunExecutions"]["Properties"]["Environment"]["Variables"]
    assert variables["DYNAVERA_RUNTIME_SECRET_ARN"] == {"Ref": "RuntimeSecretArn"}
