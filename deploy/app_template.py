"""The Chalice app's stack: `chalice package --merge-template` with the runtime stack's outputs
wired in as CloudFormation parameters, so .chalice/config.json holds no per-account value.

The merge template adds, to what Chalice generates:
- parameters for the runtime stack's outputs, referenced by the executor only
  (MCP_AGENT_URL, the runtime's secret, its subnets and security group);
- the data stack's documents bucket as every function's DOCUMENTS_BUCKET: its name carries the
  account id (contract.documents_bucket), which a stage's config.json never holds;
- each function's name as `chalice deploy` would give it (the REST API's is `dynavera-<stage>`),
  so the log groups Chalice declares with their retention, and the policy allowing them, are
  known before the stack exists; each function waits for its log group (the functions may not
  create one, and a group made on the fly would keep logs for ever);
- the executor's read of the runtime secret: its ARN in the environment, `GetSecretValue` on that
  one secret, never the secret itself in a setting `GetFunctionConfiguration` shows;
- access logs on the REST and WebSocket stages, and X-Ray on the REST stage (API Gateway traces
  no WebSocket API; its functions are traced);
- the edge's request rate per API key (deploy/edge.py), on the REST API's stage.

`chalice package` runs with the console's origin in CONSOLE_ORIGIN: app.py decides CORS at
import, and the OPTIONS answers it writes into the REST API are fixed at package time.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from deploy import edge
from deploy.plan import ROOT, Outputs, Plan, shown_path
from deploy.prerequisites import chalice_command
from deploy.stacks import deploy_stack

# Runtime and data stack outputs → the app stack's parameters of the same names.
RUNTIME_OUTPUTS = ("RuntimeUrl", "RuntimeSecretArn", "LambdaSubnetIds", "LambdaSecurityGroupId")
DATA_OUTPUTS = ("DocumentsBucketName",)
PARAMETERS = {
    "RuntimeUrl": {"Type": "String", "Description": "MCP_AGENT_URL of the executor: the runtime stack's internal ALB."},
    "RuntimeSecretArn": {
        "Type": "String",
        "Description": "The runtime's bearer secret in Secrets Manager (runtime stack).",
    },
    "LambdaSubnetIds": {"Type": "List<AWS::EC2::Subnet::Id>", "Description": "The executor's subnets (runtime stack)."},
    "LambdaSecurityGroupId": {
        "Type": "AWS::EC2::SecurityGroup::Id",
        "Description": "The executor's security group (runtime stack).",
    },
    "DocumentsBucketName": {
        "Type": "String",
        "Description": "DOCUMENTS_BUCKET of every function: the documents bucket (data stack).",
    },
    "ConsoleOrigin": {
        "Type": "String",
        "Default": "",
        "Description": "The web console's origin, allowed by CORS; empty for none.",
    },
    "AccessLogRetentionDays": {
        "Type": "Number",
        "Default": 30,
        "AllowedValues": [1, 3, 5, 7, 14, 30, 60, 90, 180, 365],
        "Description": "How long the REST and WebSocket access logs are kept.",
    },
}
# One JSON line per request; the request id joins it to the function's own log lines.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "integrationError": "$context.integrationErrorMessage",
}
REST_FIELDS = {"httpMethod": "$context.httpMethod", "resourcePath": "$context.resourcePath"}
WEBSOCKET_FIELDS = {
    "routeKey": "$context.routeKey",
    "eventType": "$context.eventType",
    "connectionId": "$context.connectionId",
}
EXECUTOR = "RunExecutions"
SECRET_POLICY = "RunExecutionsReadsRuntimeSecret"
REST_HANDLER = "APIHandler"
# Chalice's names for the WebSocket handlers' functions, by route key.
WEBSOCKET_FUNCTIONS = {
    "$connect": "websocket_connect",
    "$default": "websocket_message",
    "$disconnect": "websocket_disconnect",
}


# checkov's findings on Chalice's resources that a careful operator leaves as they are, and why.
LOGS_AT_REST = ("CKV_AWS_158", "CloudWatch Logs encrypts at rest; no secret and no query text is logged")
CHECKOV_SKIPS = {
    "function": [
        (
            "CKV_AWS_116",
            (
                "Nothing is invoked asynchronously to dead-letter: API Gateway waits for the answer, the executor's "
                "failures go back to the runs queue and its DLQ, and the sweeper runs again in 5 minutes"
            ),
        ),
        ("CKV_AWS_115", "No reserved concurrency: new accounts have 10 in all; the executor's event source caps it"),
        ("CKV_AWS_173", "Its variables hold resource names only; the runtime secret is read from Secrets Manager"),
    ],
    "outside_vpc": [("CKV_AWS_117", "Calls public AWS APIs only; the executor alone needs the VPC, for the runtime")],
    "role": [
        (
            "CKV_AWS_111",
            (
                "Only actions that take no resource ARN are on *: X-Ray's, and the network interfaces Lambda makes "
                "for the executor in the VPC"
            ),
        )
    ],
    "log_group": [LOGS_AT_REST],
    "rest_api": [("CKV_AWS_120", "Every answer is one user's: a cache would serve it to another, or nothing")],
}


def _skips(*kinds: str) -> dict[str, Any]:
    return {"checkov": {"skip": [{"id": i, "comment": c} for kind in kinds for i, c in CHECKOV_SKIPS[kind]]}}


@dataclass(frozen=True)
class Function:
    logical_id: str
    log_group_id: str
    name: str

    @property
    def role_id(self) -> str:
        # Chalice's name for the function's role: the REST handler's follows its log group's.
        return "ApiHandlerRole" if self.logical_id == REST_HANDLER else f"{self.logical_id}Role"


def functions(app: Any, stage: str) -> list[Function]:
    """Every function of Chalice's package, with the name `chalice deploy` would give it."""
    from chalice.utils import to_cfn_resource_name

    prefix = f"{app.app_name}-{stage}"
    found = [Function(REST_HANDLER, "ApiHandlerLogGroup", prefix)] if app.routes else []
    lambdas = [WEBSOCKET_FUNCTIONS[key] for key in app.websocket_handlers]
    lambdas += [source.name for source in app.event_sources] + [function.name for function in app.pure_lambda_functions]
    for name in lambdas:
        found.append(
            Function(to_cfn_resource_name(name), to_cfn_resource_name(f"{name}-log-group"), f"{prefix}-{name}")
        )
    return found


def merge_template(app: Any, stage: str) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for function in functions(app, stage):
        environment = {"Variables": {"DOCUMENTS_BUCKET": {"Ref": "DocumentsBucketName"}}}
        resources[function.logical_id] = {"Properties": {"FunctionName": function.name, "Environment": environment}}
        # Named outright: Chalice 1.34 names the REST handler's group after a resource that does
        # not exist (`${ApiHandler}` for `APIHandler`), and a template that fails to deploy.
        resources[function.log_group_id] = {"Properties": {"LogGroupName": f"/aws/lambda/{function.name}"}}
        resources[function.logical_id]["DependsOn"] = [function.log_group_id]
        vpc = () if function.logical_id == EXECUTOR else ("outside_vpc",)
        resources[function.logical_id]["Metadata"] = _skips("function", *vpc)
        resources[function.log_group_id]["Metadata"] = _skips("log_group")
        resources[function.role_id] = {"Metadata": _skips("role")}
    resources[EXECUTOR]["DependsOn"].append(SECRET_POLICY)
    resources[SECRET_POLICY] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": "read-runtime-secret",
            "Roles": [{"Ref": f"{EXECUTOR}Role"}],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "secretsmanager:GetSecretValue",
                        "Resource": {"Ref": "RuntimeSecretArn"},
                    }
                ],
            },
        },
    }
    executor = resources[EXECUTOR]["Properties"]
    executor["Environment"]["Variables"].update(
        {"MCP_AGENT_URL": {"Ref": "RuntimeUrl"}, "DYNAVERA_RUNTIME_SECRET_ARN": {"Ref": "RuntimeSecretArn"}}
    )
    executor["VpcConfig"] = {
        "SubnetIds": {"Ref": "LambdaSubnetIds"},
        "SecurityGroupIds": [{"Ref": "LambdaSecurityGroupId"}],
    }
    if REST_HANDLER in resources:
        resources[REST_HANDLER]["Properties"]["Environment"]["Variables"]["CONSOLE_ORIGIN"] = {"Ref": "ConsoleOrigin"}
    if app.routes:
        resources.update(_rest_access_logs(stage))
        resources.update(edge.resources(stage, _stage_environment(stage)))
    if app.websocket_handlers:
        resources.update(_websocket_access_logs(stage))
    return {"Parameters": PARAMETERS, "Resources": resources}


@contextmanager
def vendored_contract() -> Iterator[None]:
    """The contract package in vendor/ while Chalice packages: Chalice zips app.py, chalicelib/
    and vendor/ only, and vendor/'s contents land at the top of the zip, where `import contract`
    finds them. Removed afterwards, so the checkout keeps one copy."""
    target = ROOT / "vendor" / "contract"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(ROOT / "contract", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    try:
        yield
    finally:
        shutil.rmtree(target)
        if not any(target.parent.iterdir()):
            target.parent.rmdir()
def _stage_environment(stage: str) -> dict[str, str]:
    """The stage's variables in .chalice/config.json, where a stage may set its own limits."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return config["stages"][stage].get("environment_variables", {})


def _log_group(name: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Logs::LogGroup",
        "Metadata": _skips("log_group"),
        "Properties": {"LogGroupName": name, "RetentionInDays": {"Ref": "AccessLogRetentionDays"}},
    }


def _rest_access_logs(stage: str) -> dict[str, Any]:
    fields = json.dumps({**ACCESS_LOG_FIELDS, **REST_FIELDS}, separators=(",", ":"))
    return {
        "RestAccessLogs": _log_group(f"/dynavera/{stage}/rest-access"),
        "RestAPI": {
            "Metadata": _skips("rest_api"),
            "Properties": {
                "TracingEnabled": True,
                "AccessLogSetting": {"DestinationArn": {"Fn::GetAtt": ["RestAccessLogs", "Arn"]}, "Format": fields},
            },
        },
    }


def _websocket_access_logs(stage: str) -> dict[str, Any]:
    fields = json.dumps({**ACCESS_LOG_FIELDS, **WEBSOCKET_FIELDS}, separators=(",", ":"))
    return {
        "WebsocketAccessLogs": _log_group(f"/dynavera/{stage}/websocket-access"),
        "WebsocketAPIStage": {
            "Properties": {
                "AccessLogSettings": {
                    "DestinationArn": {"Fn::GetAtt": ["WebsocketAccessLogs", "Arn"]},
                    "Format": fields,
                }
            }
        },
    }


def package(plan: Plan, console_origin: str) -> Path:
    """Write the merge template and run `chalice package` (local: a dry run runs it too), with
    CORS for `console_origin` on every path (none when it is empty)."""
    import app as chalice_app

    merge = plan.out_dir / "app-merge.json"
    out = plan.out_dir / "app"
    merge.parent.mkdir(parents=True, exist_ok=True)
    merge.write_text(json.dumps(merge_template(chalice_app.app, plan.stage), indent=2) + "\n")
    chalice = str(chalice_command())
    relative = [shown_path(path) for path in (merge, out)]
    with vendored_contract():
        plan.command(
            [chalice, "package", "--stage", plan.stage, "--merge-template", relative[0], relative[1]],
            local=True,
            env={"CONSOLE_ORIGIN": console_origin},
        )
    return out / "sam.json"


def parameters(runtime: Outputs, data: Outputs, console_origin: str) -> dict[str, str]:
    return {
        **{name: runtime[name] for name in RUNTIME_OUTPUTS},
        **{name: data[name] for name in DATA_OUTPUTS},
        "ConsoleOrigin": console_origin,
    }


def upload(plan: Plan, template_path: Path, bucket: str) -> str | None:
    """What `aws cloudformation package` does: the zip and the template to S3, by content.

    The template goes by URL: Chalice's is over CloudFormation's 51,200-byte inline limit.
    """
    zip_path = template_path.parent / "deployment.zip"
    zip_key = f"app/{plan.stage}/{_sha256(zip_path.read_bytes())}.zip"
    packaged = template_path.with_name("packaged.json")
    plan.show(
        [
            "aws",
            "cloudformation",
            "package",
            "--template-file",
            shown_path(template_path),
            "--s3-bucket",
            bucket,
            "--s3-prefix",
            f"app/{plan.stage}",
            "--output-template-file",
            shown_path(packaged),
        ]
    )
    if plan.dry_run:
        return None
    s3 = plan.client("s3")
    if not _object_exists(s3, bucket, zip_key):
        s3.upload_file(str(zip_path), bucket, zip_key)
    template = json.loads(template_path.read_text())
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://{bucket}/{zip_key}"
    body = json.dumps(template).encode()
    packaged.write_bytes(body)
    template_key = f"app/{plan.stage}/{_sha256(body)}.template.json"
    s3.put_object(Bucket=bucket, Key=template_key, Body=body, ContentType="application/json")
    return f"{s3.meta.endpoint_url}/{bucket}/{template_key}"


def deploy_app(
    plan: Plan, template_path: Path, runtime: Outputs, data: Outputs, bucket: str, console_origin: str
) -> Outputs:
    url = upload(plan, template_path, bucket)
    return deploy_stack(
        plan,
        "app",
        parameters(runtime, data, console_origin),
        template=template_path.with_name("packaged.json"),
        template_url=url,
        capabilities=("CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"),
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _object_exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True
