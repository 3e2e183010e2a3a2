"""The Chalice app's stack: `chalice package --merge-template` with the runtime stack's outputs
wired in as CloudFormation parameters, so .chalice/config.json holds no per-account value.

The merge template adds, to what Chalice generates:
- parameters for the runtime stack's outputs, referenced by the executor only
  (MCP_AGENT_URL, the runtime's secret, its subnets and security group);
- each function's name as `chalice deploy` would give it (the REST API's is `dynavera-<stage>`),
  so the log groups Chalice declares with their retention, and the policy allowing them, are
  known before the stack exists.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from deploy.plan import ROOT, Outputs, Plan, deploy_stack

# Runtime stack output → the app stack's parameter of the same name.
RUNTIME_OUTPUTS = ("RuntimeUrl", "RuntimeSecretArn", "LambdaSubnetIds", "LambdaSecurityGroupId")
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
    "ConsoleOrigin": {
        "Type": "String",
        "Default": "",
        "Description": "The web console's origin, allowed by CORS; empty for none.",
    },
}
EXECUTOR = "RunExecutions"
REST_HANDLER = "APIHandler"
# Chalice's names for the WebSocket handlers' functions, by route key.
WEBSOCKET_FUNCTIONS = {
    "$connect": "websocket_connect",
    "$default": "websocket_message",
    "$disconnect": "websocket_disconnect",
}


@dataclass(frozen=True)
class Function:
    logical_id: str
    log_group_id: str
    name: str


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
        resources[function.logical_id] = {"Properties": {"FunctionName": function.name}}
        # Named outright: Chalice 1.34 names the REST handler's group after a resource that does
        # not exist (`${ApiHandler}` for `APIHandler`), and a template that fails to deploy.
        resources[function.log_group_id] = {"Properties": {"LogGroupName": f"/aws/lambda/{function.name}"}}
    resources[EXECUTOR]["Properties"].update(
        {
            "Environment": {
                "Variables": {
                    "MCP_AGENT_URL": {"Ref": "RuntimeUrl"},
                    # Resolved by CloudFormation at deploy time: the executor reads no secret store.
                    "DYNAVERA_RUNTIME_SECRET": {
                        "Fn::Sub": "{{resolve:secretsmanager:${RuntimeSecretArn}:SecretString}}"
                    },
                }
            },
            "VpcConfig": {
                "SubnetIds": {"Ref": "LambdaSubnetIds"},
                "SecurityGroupIds": [{"Ref": "LambdaSecurityGroupId"}],
            },
        }
    )
    if REST_HANDLER in resources:
        resources[REST_HANDLER]["Properties"]["Environment"] = {
            "Variables": {"CONSOLE_ORIGIN": {"Ref": "ConsoleOrigin"}}
        }
    return {"Parameters": PARAMETERS, "Resources": resources}


def package(plan: Plan) -> Path:
    """Write the merge template and run `chalice package` (local: a dry run runs it too)."""
    import app as chalice_app

    merge = plan.out_dir / "app-merge.json"
    out = plan.out_dir / "app"
    merge.parent.mkdir(parents=True, exist_ok=True)
    merge.write_text(json.dumps(merge_template(chalice_app.app, plan.stage), indent=2) + "\n")
    chalice = str(Path(sys.executable).parent / "chalice")
    relative = [str(path.relative_to(ROOT)) for path in (merge, out)]
    plan.command([chalice, "package", "--stage", plan.stage, "--merge-template", relative[0], relative[1]], local=True)
    return out / "sam.json"


def parameters(runtime: Outputs, console_origin: str) -> dict[str, str]:
    return {**{name: runtime[name] for name in RUNTIME_OUTPUTS}, "ConsoleOrigin": console_origin}


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
            str(template_path.relative_to(ROOT)),
            "--s3-bucket",
            bucket,
            "--s3-prefix",
            f"app/{plan.stage}",
            "--output-template-file",
            str(packaged.relative_to(ROOT)),
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


def deploy_app(plan: Plan, template_path: Path, runtime: Outputs, bucket: str, console_origin: str) -> Outputs:
    url = upload(plan, template_path, bucket)
    return deploy_stack(
        plan,
        "app",
        parameters(runtime, console_origin),
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
