"""The local AWS endpoint: whatever answers on 127.0.0.1:4566 (LocalStack), else a moto server
started here; and the project's tables, queues and documents bucket created on it from
infra/data.yaml, with what moto's CloudFormation leaves out (TTL, the bucket's notification)
applied explicitly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import yaml

DATA_TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "data.yaml"
DEFAULT_URL = "http://127.0.0.1:4566"
UPLOADS_PREFIX = "uploads/"  # where contract.upload_key puts every original


def aws_environment(endpoint_url: str, stage: str) -> dict[str, str]:
    """What a process needs in its environment to use the local endpoint and this stage."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "AWS_REGION": os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")),
        "DYNAVERA_STAGE": stage,
    }


def client(service: str, endpoint_url: str) -> Any:
    """A boto3 client for the local endpoint, with the same credentials a child process gets."""
    env = aws_environment(endpoint_url, "")
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def account_id(endpoint_url: str) -> str:
    """The endpoint's account (moto's 123456789012 unless told otherwise, LocalStack's
    000000000000): what names the documents bucket there, as the account does in AWS."""
    return client("sts", endpoint_url).get_caller_identity()["Account"]


def answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=0.5)
    except httpx.HTTPError:
        return False
    return True


class MotoServer:
    """A moto server in a child process, on loopback only; with `state`, its data kept in that file."""

    def __init__(self, url: str = DEFAULT_URL, state: Path | None = None, log_path: Path | None = None) -> None:
        self.url = url
        self.state = state
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        port = self.url.rsplit(":", 1)[1]
        command = [sys.executable, "-m", "local.moto_server", "-H", "127.0.0.1", "-p", port]
        if self.state is not None:
            command += ["--state", str(self.state)]
        output = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            output = self.log_path.open("ab")
        # A session of its own: a terminal's Ctrl-C stops the services first and leaves the
        # endpoint to stop() last, so its final snapshot holds everything they wrote.
        self.process = subprocess.Popen(
            command,
            cwd=Path(__file__).resolve().parent.parent,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not answers(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"The moto server did not start on {self.url}{self._last_words()}.")
            time.sleep(0.1)

    def _last_words(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return f": {lines[-1]}" if lines else ""

    def stop(self) -> None:
        """Stop it (with state, after its last snapshot)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


def ensure_endpoint(
    url: str = DEFAULT_URL, state: Path | None = None, log_path: Path | None = None
) -> MotoServer | None:
    """Use the endpoint already answering at url, or start a moto server there (returned, to stop).

    Only a server started here keeps its data in `state`: LocalStack has its own persistence.
    """
    if answers(url):
        return None
    server = MotoServer(url, state, log_path)
    server.start()
    return server


class _TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML, keeping intrinsic functions (!Sub, !Ref …) as plain values."""


_TemplateLoader.add_multi_constructor(
    "!", lambda loader, suffix, node: loader.construct_scalar(node)
    if isinstance(node, yaml.ScalarNode)
    else loader.construct_sequence(node)
    if isinstance(node, yaml.SequenceNode)
    else loader.construct_mapping(node)
)


def load_template(path: Path = DATA_TEMPLATE) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_TemplateLoader)


def provision(stage: str, endpoint_url: str, visibility_timeout: int | None = None) -> dict[str, str]:
    """Create the data stack for `stage` on the endpoint, or bring one made by older code up to
    the template, and return its outputs.

    moto's CloudFormation drops TimeToLiveSpecification, and its stack update adds new tables
    but no index to a table that exists; so TTL and indexes are then applied from the template
    explicitly. Both are idempotent.
    """
    cfn = client("cloudformation", endpoint_url)
    stack_name = f"dynavera-{stage}-data"
    parameters = [{"ParameterKey": "Stage", "ParameterValue": stage}]
    if visibility_timeout is not None:
        parameters.append(
            {"ParameterKey": "RunsVisibilityTimeoutSeconds", "ParameterValue": str(visibility_timeout)}
        )
    done = ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    existing = {s["StackName"] for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] in done}
    dynamodb = client("dynamodb", endpoint_url)
    if stack_name not in existing:
        cfn.create_stack(
            StackName=stack_name, TemplateBody=DATA_TEMPLATE.read_text(), Parameters=parameters
        )
        cfn.get_waiter("stack_create_complete").wait(
            StackName=stack_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
    elif _tables_missing(stage, dynamodb):
        cfn.update_stack(StackName=stack_name, TemplateBody=DATA_TEMPLATE.read_text(), Parameters=parameters)
        cfn.get_waiter("stack_update_complete").wait(
            StackName=stack_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
    _apply_indexes(stage, dynamodb)
    _apply_ttl(stage, dynamodb)
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    if "DocumentsBucketName" in outputs and "IngestQueueName" in outputs:
        notify_uploads(endpoint_url, outputs["DocumentsBucketName"], outputs["IngestQueueName"])
    return outputs


def notify_uploads(endpoint_url: str, bucket: str, queue_name: str) -> None:
    """S3 ObjectCreated under uploads/ -> the ingest queue, as the template's bucket declares.

    moto's CloudFormation does not apply a bucket's NotificationConfiguration, so it is put on
    the endpoint here (idempotent). moto then sends an s3:TestEvent first and URL-encodes keys,
    as S3 does; the indexer handles both.
    """
    sqs = client("sqs", endpoint_url)
    queue_url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = {"FilterRules": [{"Name": "prefix", "Value": UPLOADS_PREFIX}]}
    client("s3", endpoint_url).put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"], "Filter": {"Key": rule}}]
        },
    )


def _tables(stage: str) -> dict[str, dict[str, Any]]:
    """The template's tables by their name in this stage: their properties."""
    return {
        resource["Properties"]["TableName"].replace("${Stage}", stage): resource["Properties"]
        for resource in load_template()["Resources"].values()
        if resource["Type"] == "AWS::DynamoDB::Table"
    }


def _tables_missing(stage: str, dynamodb: Any) -> bool:
    names = set(dynamodb.get_paginator("list_tables").paginate().build_full_result()["TableNames"])
    return not set(_tables(stage)) <= names


def _apply_indexes(stage: str, dynamodb: Any) -> None:
    """Add the template's global secondary indexes a table of an older stack lacks."""
    for table, props in _tables(stage).items():
        described = dynamodb.describe_table(TableName=table)["Table"]
        present = {i["IndexName"] for i in described.get("GlobalSecondaryIndexes", [])}
        for index in props.get("GlobalSecondaryIndexes", []):
            if index["IndexName"] in present:
                continue
            keys = {k["AttributeName"] for k in index["KeySchema"]}
            create = {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
            dynamodb.update_table(
                TableName=table,
                AttributeDefinitions=[a for a in props["AttributeDefinitions"] if a["AttributeName"] in keys],
                GlobalSecondaryIndexUpdates=[{"Create": create}],
            )


def _apply_ttl(stage: str, dynamodb: Any) -> None:
    for table, props in _tables(stage).items():
        ttl = props.get("TimeToLiveSpecification")
        if not ttl:
            continue
        current = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            dynamodb.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
