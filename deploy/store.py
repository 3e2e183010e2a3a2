"""The store stack (infra/store.yaml) in a rollout: the Chroma server and the indexer, deployed
into the runtime stack's cluster from the runtime's and the data stack's outputs; and, when the
stack is new, the index rebuilt from the chunks kept in S3 (a stage torn down and deployed again
keeps its tables and bucket, while its index went with the old file system)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from botocore.exceptions import WaiterError

from deploy.plan import INFRA, DeployError, Plan, stack_name
from deploy.stacks import deploy_stack, stack_status

INDEXER_CONTAINER = "indexer"  # infra/store.yaml's IndexerTaskDefinition
REBUILD = ["python", "-m", "mcp_container.indexer", "rebuild"]
# Inserting runs at ~2,000 chunks/s: 30 minutes is millions of chunks.
REBUILD_MINUTES = 30


def parameters(
    plan: Plan, vpc_id: str, subnets: Sequence[str], image_tag: str, alarm_topic_arn: str = ""
) -> dict[str, str]:
    """The store runs in the runtime's cluster, next to its tasks, on the data stack's bucket and
    queue; its alarms notify the runtime's topic."""
    runtime, data = plan.stack_outputs("runtime"), plan.stack_outputs("data")
    return {
        **({"AlarmTopicArn": alarm_topic_arn} if alarm_topic_arn else {}),
        "Stage": plan.stage,
        "VpcId": vpc_id,
        "PrivateSubnetIds": ",".join(subnets),
        "ImageTag": image_tag,
        "ClusterName": runtime["ClusterName"],
        "RuntimeSecurityGroupId": runtime["RuntimeSecurityGroupId"],
        "DocumentsBucketName": data["DocumentsBucketName"],
        "IngestQueueName": data["IngestQueueName"],
    }


def deploy(plan: Plan, vpc_id: str, subnets: Sequence[str], image_tag: str, alarm_topic_arn: str = "") -> None:
    new = is_new(plan)
    stack = parameters(plan, vpc_id, subnets, image_tag, alarm_topic_arn)
    deploy_stack(plan, "store", stack, template=INFRA / "store.yaml", capabilities=("CAPABILITY_IAM",))
    if new:
        rebuild_index(plan, subnets)


def is_new(plan: Plan) -> bool:
    """Whether this rollout creates the store (a failed first creation is made again too); a dry
    run cannot tell, and shows the rebuild."""
    if plan.dry_run:
        return True
    return stack_status(plan.client("cloudformation"), stack_name(plan.stage, "store")) in (None, "ROLLBACK_COMPLETE")


def rebuild_index(plan: Plan, subnets: Sequence[str]) -> None:
    """One indexer task running `rebuild`, waited for: CloudFormation has already waited for the
    Chroma service to be steady, so the server it fills is up."""
    store = plan.stack_outputs("store")
    cluster = plan.stack_outputs("runtime")["ClusterName"]
    network = {
        "awsvpcConfiguration": {
            "subnets": list(subnets),
            "securityGroups": [store["IndexerSecurityGroupId"]],
            "assignPublicIp": "DISABLED",
        }
    }
    overrides = {"containerOverrides": [{"name": INDEXER_CONTAINER, "command": REBUILD}]}
    task_definition = f"dynavera-{plan.stage}-indexer"
    plan.show(
        [
            "aws", "ecs", "run-task", "--cluster", cluster, "--task-definition", task_definition,
            "--launch-type", "FARGATE", "--network-configuration", json.dumps(network),
            "--overrides", json.dumps(overrides),
        ],
        "a new store: its index rebuilt from the chunks in S3",
    )  # fmt: skip
    plan.show(["aws", "ecs", "wait", "tasks-stopped", "--cluster", cluster, "--tasks", "<the task's ARN>"], "exit 0")
    if plan.dry_run:
        return
    ecs = plan.client("ecs")
    started = ecs.run_task(
        cluster=cluster,
        taskDefinition=task_definition,
        launchType="FARGATE",
        networkConfiguration=network,
        overrides=overrides,
    )
    if started.get("failures") or not started.get("tasks"):
        raise DeployError(f"The index rebuild did not start: {started.get('failures')}")
    task_arn = started["tasks"][0]["taskArn"]
    try:
        ecs.get_waiter("tasks_stopped").wait(
            cluster=cluster,
            tasks=[task_arn],
            WaiterConfig={"Delay": plan.poll_seconds, "MaxAttempts": REBUILD_MINUTES * 60 // plan.poll_seconds},
        )
    except WaiterError as err:
        raise DeployError(f"The index rebuild ({task_arn}) did not finish: {err}") from err
    (task,) = ecs.describe_tasks(cluster=cluster, tasks=[task_arn])["tasks"]
    exit_codes = [c.get("exitCode") for c in task.get("containers", [])]
    if exit_codes != [0]:
        raise DeployError(
            f"The index rebuild ({task_arn}) failed (exit {exit_codes}): "
            f"see the log group /dynavera/{plan.stage}/indexer."
        )
    plan.say("  the index is rebuilt from the chunks in S3")
