"""infra/store.yaml: the Chroma server on EFS and the indexer. What moto's CloudFormation creates
(EFS, its mount targets and access point, the security groups' ingress, the services and task
definitions) is checked on the moto server; what it drops (Cloud Map, egress rules, task
networking and volumes, deployment settings, autoscaling, alarms) from the template itself."""

from __future__ import annotations

import re
from typing import Any

import pytest

from contract import documents_bucket
from tests.infra.conftest import INFRA, ROOT, substitute, template
from tests.infra.iam_policy import ACCOUNT, allows

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS::")
REGION = "us-east-1"
CHROMA_PORT = 8000


def _store() -> dict[str, Any]:
    return template("store.yaml")["Resources"]


def _container(task: str) -> dict[str, Any]:
    (container,) = _store()[task]["Properties"]["ContainerDefinitions"]
    return container


def _image_uid() -> str:
    """The user the runtime image runs as (mcp_container/Dockerfile's useradd --uid)."""
    match = re.search(r"useradd .*--uid (\d+)", (ROOT / "mcp_container" / "Dockerfile").read_text())
    assert match, "the Dockerfile creates its user with a fixed uid"
    return match.group(1)


# --- on the moto server ------------------------------------------------------------------------


def test_the_index_lies_on_an_encrypted_file_system_mounted_in_the_runtimes_subnets(
    aws: Any, store_stack: dict[str, Any]
) -> None:
    efs = aws("efs")
    file_system_id = store_stack["store"]["FileSystemId"]
    (file_system,) = efs.describe_file_systems(FileSystemId=file_system_id)["FileSystems"]
    assert file_system["Encrypted"] is True
    targets = efs.describe_mount_targets(FileSystemId=file_system_id)["MountTargets"]
    assert sorted(t["SubnetId"] for t in targets) == sorted(store_stack["subnet_ids"])
    (access_point,) = efs.describe_access_points(FileSystemId=file_system_id)["AccessPoints"]
    uid = int(_image_uid())
    assert access_point["PosixUser"] == {"Uid": uid, "Gid": uid}
    assert access_point["RootDirectory"]["Path"] == "/chroma"
    assert access_point["RootDirectory"]["CreationInfo"]["OwnerUid"] == uid


def test_chroma_is_reachable_only_from_the_runtime_and_the_indexer(aws: Any, store_stack: dict[str, Any]) -> None:
    ec2 = aws("ec2")
    store = store_stack["store"]
    chroma, indexer = store["ChromaSecurityGroupId"], store["IndexerSecurityGroupId"]
    (group,) = ec2.describe_security_groups(GroupIds=[chroma])["SecurityGroups"]
    sources = set()
    for rule in group["IpPermissions"]:
        assert not rule["IpRanges"] and not rule.get("Ipv6Ranges"), "Chroma has no authentication: no address range"
        assert (rule["FromPort"], rule["ToPort"]) == (CHROMA_PORT, CHROMA_PORT)
        sources |= {pair["GroupId"] for pair in rule["UserIdGroupPairs"]}
    assert sources == {store_stack["runtime"]["RuntimeSecurityGroupId"], indexer}
    (indexer_group,) = ec2.describe_security_groups(GroupIds=[indexer])["SecurityGroups"]
    assert indexer_group["IpPermissions"] == [], "the indexer serves nothing"


def test_only_the_chroma_task_reaches_the_file_system(aws: Any, store_stack: dict[str, Any]) -> None:
    ec2, efs = aws("ec2"), aws("efs")
    file_system_id = store_stack["store"]["FileSystemId"]
    target_groups = {
        group
        for target in efs.describe_mount_targets(FileSystemId=file_system_id)["MountTargets"]
        for group in efs.describe_mount_target_security_groups(MountTargetId=target["MountTargetId"])["SecurityGroups"]
    }
    (group_id,) = target_groups
    (group,) = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    (rule,) = group["IpPermissions"]
    assert (rule["FromPort"], rule["ToPort"], rule["IpRanges"]) == (2049, 2049, [])
    assert [pair["GroupId"] for pair in rule["UserIdGroupPairs"]] == [store_stack["store"]["ChromaSecurityGroupId"]]


def test_chroma_and_the_indexer_run_the_runtime_image_in_the_runtimes_cluster(
    aws: Any, store_stack: dict[str, Any]
) -> None:
    ecs = aws("ecs")
    stage, store = store_stack["stage"], store_stack["store"]
    image = f"{store_stack['registry']['RepositoryUri']}:{store_stack['image_tag']}"
    cluster = store_stack["runtime"]["ClusterName"]
    services = ecs.describe_services(
        cluster=cluster, services=[store["ChromaServiceName"], store["IndexerServiceName"]]
    )
    by_name = {s["serviceName"]: s for s in services["services"]}
    assert by_name[f"dynavera-{stage}-chroma"]["desiredCount"] == 1

    chroma = ecs.describe_task_definition(taskDefinition=f"dynavera-{stage}-chroma")["taskDefinition"]
    (container,) = chroma["containerDefinitions"]
    assert container["image"] == image
    assert container["command"][:2] == ["chroma", "run"]
    assert container["portMappings"] == [{"containerPort": CHROMA_PORT, "protocol": "tcp"}]
    (mount,) = container["mountPoints"]
    assert container["command"][container["command"].index("--path") + 1] == mount["containerPath"]

    indexer = ecs.describe_task_definition(taskDefinition=f"dynavera-{stage}-indexer")["taskDefinition"]
    (container,) = indexer["containerDefinitions"]
    assert container["image"] == image
    assert container["command"] == ["python", "-m", "mcp_container.indexer"]
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert environment["DYNAVERA_CHROMA_URL"] == store["ChromaUrl"]
    assert environment["DOCUMENTS_BUCKET"] == store_stack["parameters"]["DocumentsBucketName"]
    assert environment["INGEST_QUEUE_NAME"] == store_stack["parameters"]["IngestQueueName"]
    assert environment["DOCUMENTS_TABLE"] == f"dynavera-{stage}-documents"
    assert environment["COLLECTIONS_TABLE"] == f"dynavera-{stage}-collections"


# --- from the template: what moto drops ----------------------------------------------------------


def test_a_chroma_deployment_never_runs_two_servers_on_one_index() -> None:
    service = _store()["ChromaService"]["Properties"]
    assert service["DesiredCount"] == 1
    deployment = service["DeploymentConfiguration"]
    assert (deployment["MaximumPercent"], deployment["MinimumHealthyPercent"]) == (100, 0)
    assert "ChromaService" not in {
        r["Properties"].get("ResourceId", "")
        for r in _store().values()
        if r["Type"].startswith("AWS::ApplicationAutoScaling")
    }, "nothing may scale Chroma"
    # Tasks run where the file system has its mount targets.
    subnets = service["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"]
    mounted = [r["Properties"]["SubnetId"] for r in _store().values() if r["Type"] == "AWS::EFS::MountTarget"]
    assert sorted(map(str, subnets)) == sorted(map(str, mounted))


def test_the_file_system_is_encrypted_at_rest_and_in_transit_and_mounted_through_the_access_point() -> None:
    resources = _store()
    file_system = resources["FileSystem"]["Properties"]
    assert file_system["Encrypted"] is True
    statements = file_system["FileSystemPolicy"]["Statement"]
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"AWS": "ChromaTaskRole.Arn"}, "only the Chroma task mounts the index"
    assert "elasticfilesystem:AccessPointArn" in allow["Condition"]["StringLike"]
    (volume,) = resources["ChromaTaskDefinition"]["Properties"]["Volumes"]
    efs = volume["EFSVolumeConfiguration"]
    assert efs["FilesystemId"] == "FileSystem" and efs["TransitEncryption"] == "ENABLED"
    assert efs["AuthorizationConfig"] == {"AccessPointId": "ChromaAccessPoint", "IAM": "ENABLED"}
    assert resources["ChromaService"]["Properties"]["PlatformVersion"] == "LATEST"  # EFS needs Fargate 1.4+


def test_every_client_finds_chroma_at_one_cloud_map_name() -> None:
    resources = _store()
    namespace = resources["Namespace"]
    assert namespace["Type"] == "AWS::ServiceDiscovery::PrivateDnsNamespace"
    discovery = resources["ChromaDiscovery"]["Properties"]
    url = f"http://{discovery['Name']}.{namespace['Properties']['Name']}:{CHROMA_PORT}"
    assert discovery["DnsConfig"]["DnsRecords"][0]["Type"] == "A"  # awsvpc tasks register their address
    (registry,) = resources["ChromaService"]["Properties"]["ServiceRegistries"]
    assert registry["RegistryArn"] == "ChromaDiscovery.Arn"
    runtime_env = {
        e["Name"]: e["Value"]
        for e in template("runtime.yaml")["Resources"]["RuntimeTaskDefinition"]["Properties"]["ContainerDefinitions"][
            0
        ]["Environment"]
    }
    indexer_env = {e["Name"]: e["Value"] for e in _container("IndexerTaskDefinition")["Environment"]}
    assert runtime_env["DYNAVERA_CHROMA_URL"] == indexer_env["DYNAVERA_CHROMA_URL"] == url
    assert template("store.yaml")["Outputs"]["ChromaUrl"]["Value"] == url
    command = _container("ChromaTaskDefinition")["Command"]
    assert (
        command[command.index("--port") + 1] == str(CHROMA_PORT) and command[command.index("--host") + 1] == "0.0.0.0"
    )
    assert f"127.0.0.1:{CHROMA_PORT}/api/v2/heartbeat" in " ".join(
        _container("ChromaTaskDefinition")["HealthCheck"]["Command"]
    )


def _logical_id(value: str | list[str]) -> str:
    """The resource (or parameter) a !Ref or !GetAtt names, in either YAML form."""
    return value.split(".")[0] if isinstance(value, str) else value[0]


def _egress(resources: dict[str, Any]) -> dict[str, list[tuple[Any, str]]]:
    """Security group (logical id or parameter) → its egress rules as (port, destination)."""
    rules: list[tuple[str, dict[str, Any]]] = []
    for name, resource in resources.items():
        if resource["Type"] == "AWS::EC2::SecurityGroup":
            rules += [(name, rule) for rule in resource["Properties"].get("SecurityGroupEgress", [])]
        if resource["Type"] == "AWS::EC2::SecurityGroupEgress":
            rules.append((_logical_id(resource["Properties"]["GroupId"]), resource["Properties"]))
    found: dict[str, list[tuple[Any, str]]] = {}
    for group, rule in rules:
        target = rule.get("CidrIp") or _logical_id(rule["DestinationSecurityGroupId"])
        found.setdefault(group, []).append((rule.get("FromPort", "all"), target))
    return found


def test_security_group_egress_of_the_store_goes_only_where_each_hop_needs() -> None:
    egress = _egress(_store())
    assert sorted(egress["ChromaSecurityGroup"]) == [(443, "0.0.0.0/0"), (2049, "FileSystemSecurityGroup")]
    assert sorted(egress["IndexerSecurityGroup"]) == [(443, "0.0.0.0/0"), (CHROMA_PORT, "ChromaSecurityGroup")]
    # The runtime stack's tasks gain exactly one hop: to Chroma.
    assert egress["RuntimeSecurityGroupId"] == [(CHROMA_PORT, "ChromaSecurityGroup")]
    assert egress["FileSystemSecurityGroup"] == [("all", "127.0.0.1/32")], "mount targets start nothing"


def test_the_indexer_scales_on_the_ingest_queue_and_may_rest_at_zero() -> None:
    resources = _store()
    store = template("store.yaml")
    assert "DesiredCount" not in resources["IndexerService"]["Properties"], "the queue's depth owns the count"
    target = resources["IndexerScalableTarget"]["Properties"]
    assert "IndexerService.Name" in target["ResourceId"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == ("IndexerMinTasks", "IndexerMaxTasks")
    assert store["Parameters"]["IndexerMinTasks"]["Default"] == 0
    policies = {
        name: r["Properties"]
        for name, r in resources.items()
        if r["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"
    }
    assert {p["ScalingTargetId"] for p in policies.values()} == {"IndexerScalableTarget"}
    alarms = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}

    backlog = alarms["IngestBacklogAlarm"]
    assert (backlog["Namespace"], backlog["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert backlog["Dimensions"] == [{"Name": "QueueName", "Value": "IngestQueueName"}]
    assert (backlog["ComparisonOperator"], backlog["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    (scale_out,) = backlog["AlarmActions"]
    steps = policies[scale_out]["StepScalingPolicyConfiguration"]
    assert steps["AdjustmentType"] == "ChangeInCapacity" and all(
        s["ScalingAdjustment"] > 0 for s in steps["StepAdjustments"]
    )

    idle = alarms["IngestIdleAlarm"]
    metrics = {m["Id"]: m for m in idle["Metrics"]}
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in metrics.values() if "MetricStat" in m}
    # Idle means nothing waiting AND nothing in flight: a task mid-document is never removed.
    assert names == {"ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible"}
    (returned,) = [m for m in metrics.values() if m.get("ReturnData", True)]
    assert returned["Expression"].replace(" ", "") == "visible+inflight"
    assert (idle["ComparisonOperator"], idle["Threshold"]) == ("LessThanOrEqualToThreshold", 0)
    assert idle["TreatMissingData"] == "breaching", "SQS goes quiet about an idle queue"
    (scale_in,) = idle["AlarmActions"]
    steps = policies[scale_in]["StepScalingPolicyConfiguration"]
    assert steps["AdjustmentType"] == "ExactCapacity"
    assert [s["ScalingAdjustment"] for s in steps["StepAdjustments"]] == [0]


# --- least privilege ---------------------------------------------------------------------------

PARAMETERS = {
    "Stage": "dev",
    "DocumentsBucketName": documents_bucket("dev", ACCOUNT),
    "IngestQueueName": "dynavera-dev-ingest",
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
}
BUCKET = f"arn:aws:s3:::{PARAMETERS['DocumentsBucketName']}"
PROD_BUCKET = f"arn:aws:s3:::{documents_bucket('prod', ACCOUNT)}"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/dynavera-dev-"


def _rendered(value: Any) -> Any:
    if isinstance(value, str):
        return substitute(value, PARAMETERS)
    if isinstance(value, list):
        return [_rendered(v) for v in value]
    if isinstance(value, dict):
        return {k: _rendered(v) for k, v in value.items()}
    return value


def _policy(role: str) -> dict[str, Any]:
    (policy,) = _store()[role]["Properties"]["Policies"]
    return _rendered(policy["PolicyDocument"])


def _actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


# What mcp_container.indexer calls (read from it: head/get/put/delete of objects, the ingest
# queue's long poll, claims and counts as conditional updates and transactions, a scan to rebuild).
INDEXER_CALLS = [
    ("s3:GetObject", f"{BUCKET}/uploads/u/c/d"),
    ("s3:DeleteObject", f"{BUCKET}/uploads/u/c/d"),
    ("s3:GetObject", f"{BUCKET}/chunks/c/d.jsonl.gz"),
    ("s3:PutObject", f"{BUCKET}/chunks/c/d.jsonl.gz"),
    ("s3:DeleteObject", f"{BUCKET}/chunks/c/d.jsonl.gz"),
    ("s3:ListBucket", BUCKET),
    ("sqs:GetQueueUrl", f"arn:aws:sqs:{REGION}:{ACCOUNT}:dynavera-dev-ingest"),
    ("sqs:ReceiveMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:dynavera-dev-ingest"),
    ("sqs:DeleteMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:dynavera-dev-ingest"),
    ("sqs:ChangeMessageVisibility", f"arn:aws:sqs:{REGION}:{ACCOUNT}:dynavera-dev-ingest"),
    *((f"dynamodb:{a}", TABLE + "documents") for a in ("GetItem", "UpdateItem", "DeleteItem", "Query", "Scan")),
    *((f"dynamodb:{a}", TABLE + "collections") for a in ("UpdateItem", "DeleteItem")),
]


def test_the_indexer_may_make_its_calls_and_no_other() -> None:
    policy = _policy("IndexerTaskRole")
    refused = [(action, resource) for action, resource in INDEXER_CALLS if not allows(policy, action, resource)]
    assert not refused
    assert _actions(policy) == {action for action, _ in INDEXER_CALLS}
    assert not any("*" in action for action in _actions(policy))


def test_the_indexer_reads_uploads_keeps_chunks_and_touches_nothing_else_in_the_bucket() -> None:
    policy = _policy("IndexerTaskRole")
    assert not allows(policy, "s3:PutObject", f"{BUCKET}/uploads/u/c/d"), "uploads come from users only"
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert not allows(policy, action, f"{BUCKET}/other/key"), action
        assert not allows(policy, action, f"{PROD_BUCKET}/chunks/c/d.jsonl.gz"), action
    assert not allows(policy, "s3:ListBucket", PROD_BUCKET)


def test_the_indexer_consumes_only_the_ingest_queue_and_the_two_document_tables() -> None:
    policy = _policy("IndexerTaskRole")
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"):
        assert not allows(policy, action, f"arn:aws:sqs:{REGION}:{ACCOUNT}:dynavera-dev-runs"), action
        assert not allows(policy, action, f"arn:aws:sqs:{REGION}:{ACCOUNT}:dynavera-dev-ingest-dlq"), action
    assert not allows(policy, "dynamodb:PutItem", TABLE + "documents"), "documents are made by the API"
    assert not allows(policy, "dynamodb:GetItem", TABLE + "collections")
    for other in ("agents", "executions", "api-keys", "events"):
        assert not any(allows(policy, f"dynamodb:{a}", TABLE + other) for a in ("GetItem", "UpdateItem", "Scan")), other
    assert not allows(policy, "dynamodb:GetItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/dynavera-prod-documents")


def test_the_chroma_task_gets_no_aws_permission_and_the_runtime_no_document_data() -> None:
    assert "Policies" not in _store()["ChromaTaskRole"]["Properties"], "only the file system's policy lets it in"
    assert "ManagedPolicyArns" not in _store()["ChromaTaskRole"]["Properties"]
    runtime = template("runtime.yaml")["Resources"]["TaskRole"]["Properties"]
    assert "ManagedPolicyArns" not in runtime
    granted = {a for policy in runtime.get("Policies", []) for a in _actions(policy["PolicyDocument"])}
    # Retrieval goes through the Chroma server: the runtime reads no bucket, queue or table.
    assert not [a for a in granted if a.split(":")[0] in {"s3", "sqs", "dynamodb", "elasticfilesystem"}]


def test_the_store_execution_role_pulls_only_the_stage_image_and_writes_only_its_logs() -> None:
    policy = _policy("StoreTaskExecutionRole")
    repository = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/dynavera-dev-runtime"
    assert allows(policy, "ecr:BatchGetImage", repository)
    assert not allows(policy, "ecr:BatchGetImage", f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/dynavera-prod-runtime")
    wildcard = [s for s in policy["Statement"] if s["Resource"] == "*"]
    assert [s["Action"] for s in wildcard] == ["ecr:GetAuthorizationToken"]
    logs = next(s for s in policy["Statement"] if "logs:PutLogEvents" in s["Action"])
    assert sorted(logs["Resource"]) == ["ChromaLogGroup.Arn", "IndexerLogGroup.Arn"]


def test_the_store_deploys_after_the_runtime_from_its_outputs() -> None:
    parameters = template("store.yaml")["Parameters"]
    runtime_outputs = template("runtime.yaml")["Outputs"]
    for name in ("ClusterName", "RuntimeSecurityGroupId"):
        assert name in parameters and name in runtime_outputs, name
    assert runtime_outputs["RuntimeSecurityGroupId"]["Value"] == "RuntimeSecurityGroup.GroupId"
    assert (INFRA / "store.yaml").read_text().count("dynavera-${Stage}-runtime:${ImageTag}") == 2


def test_alarms_watch_the_chroma_task_and_the_ingest_dlq() -> None:
    alarms = {name: r["Properties"] for name, r in _store().items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    chroma = alarms["ChromaNotRunningAlarm"]
    assert (chroma["Namespace"], chroma["MetricName"]) == ("ECS/ContainerInsights", "RunningTaskCount")
    assert {d["Name"]: d["Value"] for d in chroma["Dimensions"]} == {
        "ClusterName": "ClusterName",
        "ServiceName": "ChromaService.Name",
    }
    assert (chroma["ComparisonOperator"], chroma["Threshold"]) == ("LessThanThreshold", 1)
    # Longer than a deployment's gap, when the old task is stopped before the new one runs.
    assert chroma["EvaluationPeriods"] * chroma["Period"] >= 300
    assert chroma["TreatMissingData"] == "breaching"
    (dimension,) = alarms["IngestDeadLetterAlarm"]["Dimensions"]
    assert substitute(dimension["Value"], {"IngestQueueName": "dynavera-dev-ingest"}) == "dynavera-dev-ingest-dlq"
    for name in ("ChromaNotRunningAlarm", "IngestDeadLetterAlarm"):
        assert alarms[name]["AlarmActions"] == ["HasAlarmTopic", ["AlarmTopicArn"], "AWS::NoValue"], name
    runtime_topic = template("runtime.yaml")["Parameters"]["AlarmTopicArn"]
    assert template("store.yaml")["Parameters"]["AlarmTopicArn"]["Default"] == runtime_topic["Default"] == ""
