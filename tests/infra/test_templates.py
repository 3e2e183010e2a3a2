"""infra/: every template lints clean, and created on a moto server it makes what the code expects.

moto's CloudFormation drops TTL, security group egress, autoscaling, alarms and most task
definition fields, so those are asserted from the templates themselves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file

from chalicelib.models import TABLES
from chalicelib.settings import Settings
from contract import documents_bucket
from deploy.stage import STAGE_NAME
from tests.infra.conftest import INFRA, chalice_config, substitute, template

TEMPLATES = sorted(INFRA.glob("*.yaml"))
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS::")  # moto's skipped types, see above


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_passes_cfn_lint(path: Path) -> None:
    matches = lint_file(path)
    assert not matches, "\n".join(str(m) for m in matches)


def _table_suffix(model: Any) -> str:
    return getattr(Settings.from_env({}), TABLES[model]).removeprefix("dynavera-dev-")


def _key_schema(items: list[dict[str, str]]) -> dict[str, str]:
    return {k["KeyType"]: k["AttributeName"] for k in items}


def test_data_stack_tables_match_every_model_keys_and_indexes(aws: Any, data_stack: dict[str, Any]) -> None:
    dynamodb = aws("dynamodb")
    for model in TABLES:
        table = f"dynavera-{data_stack['stage']}-{_table_suffix(model)}"
        described = dynamodb.describe_table(TableName=table)["Table"]
        schema = model._get_schema()
        assert _key_schema(described["KeySchema"]) == _key_schema(schema["key_schema"]), table
        types = {a["AttributeName"]: a["AttributeType"] for a in described["AttributeDefinitions"]}
        for attribute in schema["attribute_definitions"]:
            assert types[attribute["AttributeName"]] == attribute["AttributeType"], (table, attribute)
        indexes = {i["IndexName"]: i for i in described.get("GlobalSecondaryIndexes", [])}
        assert set(indexes) == {i["index_name"] for i in schema["global_secondary_indexes"]}, table
        for expected in schema["global_secondary_indexes"]:
            index = indexes[expected["index_name"]]
            assert _key_schema(index["KeySchema"]) == _key_schema(expected["key_schema"]), (table, index["IndexName"])
            assert index["Projection"]["ProjectionType"] == expected["projection"]["ProjectionType"]
        assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST", table


def test_ttl_is_declared_exactly_on_the_tables_whose_models_expire_rows() -> None:
    declared = {
        substitute(r["Properties"]["TableName"], {"Stage": "dev"}): r["Properties"].get("TimeToLiveSpecification")
        for r in template("data.yaml")["Resources"].values()
        if r["Type"] == "AWS::DynamoDB::Table"
    }
    for model in TABLES:
        ttl = model._ttl_attribute()
        spec = declared[f"dynavera-dev-{_table_suffix(model)}"]
        if ttl is None:
            assert spec is None, model.__name__
        else:
            assert spec == {"AttributeName": ttl.attr_name, "Enabled": True}, model.__name__


def test_tables_holding_history_have_point_in_time_recovery() -> None:
    for name in ("AgentsTable", "ExecutionsTable", "EventsTable", "ApiKeysTable", "CollectionsTable", "DocumentsTable"):
        props = template("data.yaml")["Resources"][name]["Properties"]
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, name


def test_runs_queue_redrives_to_its_dlq_after_the_executors_receive_limit(aws: Any, data_stack: dict[str, Any]) -> None:
    from chalicelib.capacity import MAX_RECEIVES

    sqs = aws("sqs")
    url = sqs.get_queue_url(QueueName=data_stack["outputs"]["RunsQueueName"])["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == data_stack["outputs"]["RunsDeadLetterQueueArn"]
    assert int(redrive["maxReceiveCount"]) == MAX_RECEIVES
    executor_timeouts = [
        stage["lambda_functions"]["run_executions"]["lambda_timeout"] for stage in chalice_config()["stages"].values()
    ]
    assert int(attributes["VisibilityTimeout"]) >= 6 * max(executor_timeouts)


def test_runtime_stack_puts_an_internal_alb_in_front_of_healthchecked_tasks(
    aws: Any, runtime_stacks: dict[str, Any]
) -> None:
    elbv2 = aws("elbv2")
    stage = runtime_stacks["stage"]
    (balancer,) = elbv2.describe_load_balancers(Names=[f"dynavera-{stage}-runtime"])["LoadBalancers"]
    assert balancer["Scheme"] == "internal"
    assert {z["SubnetId"] for z in balancer["AvailabilityZones"]} == set(runtime_stacks["subnet_ids"])
    assert runtime_stacks["runtime"]["RuntimeUrl"] == f"http://{balancer['DNSName']}"
    (group,) = elbv2.describe_target_groups(Names=[f"dynavera-{stage}-runtime"])["TargetGroups"]
    assert (group["TargetType"], group["Port"], group["HealthCheckPath"]) == ("ip", 8001, "/health")
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    assert listener["DefaultActions"][0]["TargetGroupArn"] == group["TargetGroupArn"]
    (service,) = aws("ecs").describe_services(cluster=f"dynavera-{stage}", services=[f"dynavera-{stage}-runtime"])[
        "services"
    ]
    assert service["taskDefinition"].split("/")[-1].startswith(f"dynavera-{stage}-runtime")


def test_runtime_security_groups_admit_only_the_lambda_then_only_the_alb(
    aws: Any, runtime_stacks: dict[str, Any]
) -> None:
    ec2 = aws("ec2")
    lambda_group = runtime_stacks["runtime"]["LambdaSecurityGroupId"]
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [runtime_stacks["vpc_id"]]}])[
        "SecurityGroups"
    ]
    by_source = {}
    for group in groups:
        for rule in group["IpPermissions"]:
            assert not rule["IpRanges"], f"{group['GroupName']} admits an address range"
            for pair in rule["UserIdGroupPairs"]:
                by_source[pair["GroupId"]] = (group["GroupId"], rule["FromPort"])
    alb_group, alb_port = by_source[lambda_group]
    assert alb_port == 80
    runtime_group, runtime_port = by_source[alb_group]
    assert runtime_port == 8001
    # The runtime tasks reach one thing: the Chroma server of infra/store.yaml, on its port.
    admitting = {
        (group["Description"], rule["FromPort"])
        for group in groups
        for rule in group["IpPermissions"]
        if runtime_group in {pair["GroupId"] for pair in rule["UserIdGroupPairs"]}
    }
    assert {port for _, port in admitting} <= {8000}
    assert all(description.startswith("Dynavera Chroma server") for description, _ in admitting)


def test_runtime_task_runs_the_image_pushed_to_the_registry_stack(aws: Any, runtime_stacks: dict[str, Any]) -> None:
    stage = runtime_stacks["stage"]
    definition = aws("ecs").describe_task_definition(taskDefinition=f"dynavera-{stage}-runtime")["taskDefinition"]
    (container,) = definition["containerDefinitions"]
    assert container["image"] == f"{runtime_stacks['registry']['RepositoryUri']}:{runtime_stacks['image_tag']}"
    assert container["portMappings"][0]["containerPort"] == 8001
    assert container["logConfiguration"]["options"]["awslogs-group"] == f"/dynavera/{stage}/runtime"
    repository = aws("ecr").describe_repositories(repositoryNames=[runtime_stacks["registry"]["RepositoryName"]])
    assert repository["repositories"][0]["imageTagMutability"] == "IMMUTABLE"


def test_runtime_outputs_are_what_the_executor_config_needs(runtime_stacks: dict[str, Any]) -> None:
    outputs = runtime_stacks["runtime"]
    assert outputs["LambdaSubnetIds"].split(",") == runtime_stacks["subnet_ids"]
    assert outputs["LambdaSecurityGroupId"].startswith("sg-")
    assert outputs["RuntimeUrl"].startswith("http://")


def _resources(kind: str) -> list[dict[str, Any]]:
    return [r for r in template("runtime.yaml")["Resources"].values() if r["Type"] == kind]


def test_runtime_task_is_fargate_sized_for_model_and_checks_its_own_health() -> None:
    runtime = template("runtime.yaml")
    (task,) = _resources("AWS::ECS::TaskDefinition")
    props = task["Properties"]
    assert props["RequiresCompatibilities"] == ["FARGATE"] and props["NetworkMode"] == "awsvpc"
    size = runtime["Mappings"]["TaskSizes"][runtime["Parameters"]["RuntimeSize"]["Default"]]
    assert int(size["Cpu"]) >= 2048 and int(size["Memory"]) >= 4096
    assert props["Cpu"] == ["TaskSizes", "RuntimeSize", "Cpu"] and props["Memory"] == [
        "TaskSizes",
        "RuntimeSize",
        "Memory",
    ]
    (container,) = props["ContainerDefinitions"]
    command = " ".join(container["HealthCheck"]["Command"])
    assert "127.0.0.1:8001/health" in command
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    (service,) = _resources("AWS::ECS::Service")
    assert service["Properties"]["LoadBalancers"] == [
        {"ContainerName": container["Name"], "ContainerPort": 8001, "TargetGroupArn": "RuntimeTargetGroup"}
    ]
    assert service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"


# Fargate's CPU units → the memory (MiB) it accepts with them.
FARGATE_MEMORY = {
    256: {512, 1024, 2048},
    512: set(range(1024, 4097, 1024)),
    1024: set(range(2048, 8193, 1024)),
    2048: set(range(4096, 16385, 1024)),
    4096: set(range(8192, 30721, 1024)),
    8192: set(range(16384, 61441, 4096)),
    16384: set(range(32768, 122881, 8192)),
}


def test_every_runtime_size_the_template_accepts_is_a_pair_fargate_accepts() -> None:
    runtime = template("runtime.yaml")
    allowed = runtime["Parameters"]["RuntimeSize"]["AllowedValues"]
    sizes = runtime["Mappings"]["TaskSizes"]
    assert set(allowed) == set(sizes)
    for name in allowed:
        cpu, memory = int(sizes[name]["Cpu"]), int(sizes[name]["Memory"])
        assert memory in FARGATE_MEMORY[cpu], name
    assert runtime["Parameters"]["RuntimeSize"]["Default"] in allowed
    # Two free numbers used to let 1024 CPU with 16384 MiB through, to fail at RegisterTaskDefinition.
    assert not {"RuntimeCpu", "RuntimeMemory"} & set(runtime["Parameters"])


def test_invalid_runtime_size_is_refused_by_the_templates_allowed_values() -> None:
    parameter = template("runtime.yaml")["Parameters"]["RuntimeSize"]
    for invalid in ("1vCPU-16GB", "2vCPU-2GB", "2048", "3vCPU-6GB"):
        assert invalid not in parameter["AllowedValues"], invalid


def test_image_rollouts_leave_the_task_count_to_autoscaling() -> None:
    (service,) = _resources("AWS::ECS::Service")
    # A DesiredCount in the template would reset the count on every stack update.
    assert "DesiredCount" not in service["Properties"]
    (target,) = _resources("AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["Properties"]["MinCapacity"] == "MinTasks"


def test_runtime_scales_on_cpu() -> None:
    (target,) = _resources("AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["Properties"]["ScalableDimension"] == "ecs:service:DesiredCount"
    assert "RuntimeService.Name" in target["Properties"]["ResourceId"]
    (policy,) = _resources("AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ECSServiceAverageCPUUtilization"


def test_alarms_watch_the_data_stacks_dlq_and_the_runtimes_health() -> None:
    alarms = {a["Properties"]["MetricName"]: a["Properties"] for a in _resources("AWS::CloudWatch::Alarm")}
    dlq = template("data.yaml")["Resources"]["RunsDeadLetterQueue"]["Properties"]["QueueName"]
    (dimension,) = alarms["ApproximateNumberOfMessagesVisible"]["Dimensions"]
    assert substitute(dimension["Value"], {"Stage": "dev"}) == substitute(dlq, {"Stage": "dev"})
    assert alarms["ApproximateNumberOfMessagesVisible"]["Threshold"] == 1
    for metric in ("UnHealthyHostCount", "HealthyHostCount"):
        names = {d["Name"] for d in alarms[metric]["Dimensions"]}
        assert names == {"TargetGroup", "LoadBalancer"}, metric


def test_security_group_egress_goes_only_where_each_hop_needs() -> None:
    resources = template("runtime.yaml")["Resources"]
    egress: dict[str, list[tuple[Any, ...]]] = {}
    for name, resource in resources.items():
        if resource["Type"] == "AWS::EC2::SecurityGroup":
            for rule in resource["Properties"].get("SecurityGroupEgress", []):
                egress.setdefault(name, []).append(_rule(rule))
        if resource["Type"] == "AWS::EC2::SecurityGroupEgress":
            group = _logical_id(resource["Properties"]["GroupId"])
            egress.setdefault(group, []).append(_rule(resource["Properties"]))
    assert sorted(egress["LambdaSecurityGroup"]) == [(80, "AlbSecurityGroup"), (443, "0.0.0.0/0")]
    assert egress["AlbSecurityGroup"] == [(8001, "RuntimeSecurityGroup")]
    assert egress["RuntimeSecurityGroup"] == [(443, "0.0.0.0/0")]


def _logical_id(get_att: str | list[str]) -> str:
    """The resource a !GetAtt names, in either of its YAML forms."""
    return get_att.split(".")[0] if isinstance(get_att, str) else get_att[0]


def _rule(rule: dict[str, Any]) -> tuple[Any, ...]:
    target = rule.get("CidrIp") or _logical_id(rule["DestinationSecurityGroupId"])
    assert rule["FromPort"] == rule["ToPort"]
    return (rule["FromPort"], target)


def test_task_roles_grant_only_image_pull_secret_read_and_log_writes() -> None:
    resources = template("runtime.yaml")["Resources"]
    # The runtime calls no AWS API: its role only opens the operator's ECS Exec channels.
    (exec_policy,) = resources["TaskRole"]["Properties"]["Policies"]
    (channels,) = exec_policy["PolicyDocument"]["Statement"]
    assert {a.split(":")[0] for a in channels["Action"]} == {"ssmmessages"}
    assert resources["RuntimeService"]["Properties"]["EnableExecuteCommand"] is True
    (policy,) = resources["TaskExecutionRole"]["Properties"]["Policies"]
    statements = policy["PolicyDocument"]["Statement"]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {a.split(":")[0] for a in actions} == {"ecr", "logs", "secretsmanager"}
    (secret,) = [s for s in statements if s["Action"] == "secretsmanager:GetSecretValue"]
    assert secret["Resource"] == "RuntimeSecret"
    wildcard = [s for s in statements if s["Resource"] == "*"]
    assert [s["Action"] for s in wildcard] == ["ecr:GetAuthorizationToken"]
    repository = template("registry.yaml")["Resources"]["RuntimeRepository"]["Properties"]["RepositoryName"]
    pull = next(s for s in statements if "ecr:BatchGetImage" in s["Action"])
    assert pull["Resource"].endswith(f":repository/{repository}")


def test_the_runtime_task_gets_its_secret_from_the_store_and_the_stack_hands_it_on() -> None:
    runtime = template("runtime.yaml")
    (task,) = _resources("AWS::ECS::TaskDefinition")
    (container,) = task["Properties"]["ContainerDefinitions"]
    assert container["Secrets"] == [{"Name": "DYNAVERA_RUNTIME_SECRET", "ValueFrom": "RuntimeSecret"}]
    assert "DYNAVERA_RUNTIME_SECRET" not in {e["Name"] for e in container.get("Environment", [])}
    secret = runtime["Resources"]["RuntimeSecret"]["Properties"]
    assert "Name" not in secret, "a deleted secret's name stays taken; a stage may be deployed again"
    assert secret["GenerateSecretString"]["PasswordLength"] >= 16  # the runtime refuses shorter ones
    assert runtime["Outputs"]["RuntimeSecretArn"]["Value"] == "RuntimeSecret"


def test_documents_bucket_is_private_encrypted_and_notifies_the_ingest_queue_of_uploads() -> None:
    resources = template("data.yaml")["Resources"]
    bucket = resources["DocumentsBucket"]
    props = bucket["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (notification,) = props["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Queue"] == "IngestQueue.Arn"  # !GetAtt, as the template loader keeps it
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "uploads/"}]
    # S3 checks at creation that it may send to the queue: the policy must exist first.
    assert bucket["DependsOn"] == "IngestQueuePolicy"
    (statement,) = resources["IngestQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (statement["Principal"], statement["Action"]) == ({"Service": "s3.amazonaws.com"}, "sqs:SendMessage")
    # Only this bucket, by its exact name, may notify: another account's of the same stage may not.
    bucket_arn = "arn:${AWS::Partition}:s3:::" + props["BucketName"]
    assert statement["Condition"]["ArnEquals"] == {"aws:SourceArn": bucket_arn}
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "AWS::AccountId"}
    (tls,) = resources["DocumentsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_documents_bucket_is_named_by_stage_and_account_within_s3s_63_characters() -> None:
    # S3 names are global: without the account id a second account's first deploy of a stage fails.
    data = template("data.yaml")
    name = data["Resources"]["DocumentsBucket"]["Properties"]["BucketName"]
    for stage, account in (("dev", "123456789012"), ("prod", "210987654321")):
        assert substitute(name, {"Stage": stage, "AWS::AccountId": account}) == documents_bucket(stage, account)
    # The longest stage the deploy and the template accept still fits (the region would not).
    longest = "s" + "0" * (data["Parameters"]["Stage"]["MaxLength"] - 1)
    assert STAGE_NAME.fullmatch(longest) and not STAGE_NAME.fullmatch(longest + "0")
    assert len(documents_bucket(longest, "123456789012")) <= 63
    assert len(documents_bucket(longest, "123456789012") + "-ap-southeast-2") > 63


def test_documents_bucket_answers_the_console_origin_only_when_one_is_given() -> None:
    cors = template("data.yaml")["Resources"]["DocumentsBucket"]["Properties"]["CorsConfiguration"]
    condition, given, absent = cors  # !If, as the template loader keeps it
    assert (condition, absent) == ("HasConsoleOrigin", "AWS::NoValue")
    (rule,) = given["CorsRules"]
    assert rule["AllowedMethods"] == ["POST"] and rule["AllowedOrigins"] == ["ConsoleOrigin"]


def test_data_stack_makes_the_documents_bucket_and_the_ingest_queue(aws: Any, data_stack: dict[str, Any]) -> None:
    from chalicelib.capacity import INGEST_VISIBILITY_TIMEOUT_SECONDS

    stage, outputs = data_stack["stage"], data_stack["outputs"]
    account = aws("sts").get_caller_identity()["Account"]
    assert outputs["DocumentsBucketName"] == documents_bucket(stage, account)
    rules = aws("s3").get_bucket_encryption(Bucket=outputs["DocumentsBucketName"])["ServerSideEncryptionConfiguration"]
    assert rules["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    sqs = aws("sqs")
    url = sqs.get_queue_url(QueueName=outputs["IngestQueueName"])["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"] == outputs["IngestDeadLetterQueueArn"]
    assert int(attributes["VisibilityTimeout"]) == INGEST_VISIBILITY_TIMEOUT_SECONDS
    assert outputs["IngestQueueName"] == Settings.from_env({"DYNAVERA_STAGE": stage}).ingest_queue_name
