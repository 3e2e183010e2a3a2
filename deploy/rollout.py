"""The rollout, in order: data stack, registry, runtime image, runtime stack, store stack,
console stack, the Chalice app, the console's files (and, for a demo, the shipped corpus); and
the teardown, in the reverse order."""

from __future__ import annotations

import shutil
from collections.abc import Sequence

from cli import stages
from deploy import app_template, console, demo, image, store
from deploy.plan import INFRA, DeployError, Plan, delete_stack, deploy_stack, empty_bucket, stack_name


def deploy_data(plan: Plan) -> None:
    plan.say("\n[1/8] data: DynamoDB tables, runs queue and its DLQ")
    deploy_stack(plan, "data", {"Stage": plan.stage}, template=INFRA / "data.yaml")


def deploy_registry(plan: Plan) -> None:
    plan.say("\n[2/8] registry: the runtime image repository and the artifact bucket")
    deploy_stack(plan, "registry", {"Stage": plan.stage}, template=INFRA / "registry.yaml")


def publish_runtime_image(plan: Plan) -> str:
    tag = image.content_tag()
    plan.say(f"\n[3/8] runtime image, tagged by content: {tag}")
    registry = plan.stack_outputs("registry")
    image.publish_image(plan, registry["RepositoryName"], registry["RepositoryUri"], tag)
    return tag


def deploy_runtime(plan: Plan, vpc_id: str, subnets: Sequence[str], image_tag: str, extra: dict[str, str]) -> None:
    plan.say("\n[4/8] runtime: ECS service behind an internal ALB, autoscaling, alarms")
    parameters = {
        "Stage": plan.stage,
        "VpcId": vpc_id,
        "PrivateSubnetIds": ",".join(subnets),
        "ImageTag": image_tag,
        **extra,
    }
    deploy_stack(plan, "runtime", parameters, template=INFRA / "runtime.yaml", capabilities=("CAPABILITY_IAM",))


def deploy_store(plan: Plan, vpc_id: str, subnets: Sequence[str], image_tag: str, alarm_topic_arn: str) -> None:
    plan.say("\n[5/8] store: the Chroma server on EFS and the indexer, in the runtime's cluster")
    store.deploy(plan, vpc_id, subnets, image_tag, alarm_topic_arn)


def deploy_console_stack(plan: Plan) -> str:
    if not console.present():
        plan.say("\n[6/8] console: no console/ or infra/console.yaml in this checkout; skipped")
        return ""
    plan.say("\n[6/8] console: bucket and CloudFront distribution")
    return console.deploy_console_stack(plan)["ConsoleUrl"]


def deploy_app(plan: Plan, console_origin: str) -> None:
    plan.say("\n[7/8] app: chalice package --merge-template, then its stack (REST, WebSocket, Lambdas)")
    template = app_template.package(plan)
    plan.say(f"  final template: {template}")
    bucket = plan.stack_outputs("registry")["ArtifactBucketName"]
    app_template.deploy_app(plan, template, plan.stack_outputs("runtime"), bucket, console_origin)


def publish_console(plan: Plan) -> None:
    if not console.present():
        return
    plan.say("\n[8/8] console files and config.json")
    app = plan.stack_outputs("app")
    console.publish(plan, plan.stack_outputs("console"), app["EndpointURL"], app["WebsocketConnectEndpointURL"])


def up(
    plan: Plan,
    vpc_id: str,
    subnets: Sequence[str],
    runtime_parameters: dict[str, str] | None = None,
    with_demo: bool = False,
) -> None:
    if len(subnets) < 2:
        raise DeployError(
            "SUBNETS needs at least two private subnets in different Availability Zones, comma-separated."
        )
    _check_tools(plan)
    _check_identity(plan)
    deploy_data(plan)
    deploy_registry(plan)
    tag = publish_runtime_image(plan)
    deploy_runtime(plan, vpc_id, subnets, tag, runtime_parameters or {})
    deploy_store(plan, vpc_id, subnets, tag, (runtime_parameters or {}).get("AlarmTopicArn", ""))
    console_url = deploy_console_stack(plan)
    deploy_app(plan, console.origin(console_url))
    publish_console(plan)
    if with_demo:
        demo.upload_corpus(plan)
    _report(plan, console_url)


def down(plan: Plan) -> None:
    _check_identity(plan)
    plan.say(f"\nTearing down stage {plan.stage} in {plan.region}")
    delete_stack(plan, "app")
    if console.present():
        empty_bucket(plan, "console", "ConsoleBucketName")
        delete_stack(plan, "console")
    delete_stack(plan, "store")
    delete_stack(plan, "runtime")
    empty_bucket(plan, "registry", "ArtifactBucketName")
    image.delete_images(plan)
    delete_stack(plan, "registry")
    delete_stack(plan, "data")
    plan.say(
        f"\nDone. The tables holding history are kept (DeletionPolicy Retain): dynavera-{plan.stage}-agents, "
        f"-executions, -events, -api-keys. Delete them with `aws dynamodb delete-table --table-name …` if you mean to."
    )


def _check_tools(plan: Plan) -> None:
    """Fail before the first stack, not between two: the image step needs Docker, the console npm."""
    needed = ["docker"] + (["npm"] if console.present() else [])
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if missing and not plan.dry_run:
        raise DeployError(f"{' and '.join(missing)} not found on PATH; see the README's deploy prerequisites.")


def _check_identity(plan: Plan) -> None:
    plan.show(["aws", "sts", "get-caller-identity"])
    if plan.dry_run:
        plan.say(f"Dry run for stage {plan.stage} in {plan.region}: nothing is called in AWS.")
        return
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        account = plan.client("sts").get_caller_identity()["Account"]
    except (BotoCoreError, ClientError) as err:
        raise DeployError(
            f"No usable AWS credentials ({err}). "
            "Configure them (aws configure, aws sso login, or AWS_PROFILE) and run again."
        ) from err
    plan.say(f"Stage {plan.stage} in account {account}, region {plan.region}")


def _report(plan: Plan, console_url: str) -> None:
    app = plan.stack_outputs("app")
    plan.say("\nDeployed." if not plan.dry_run else f"\nDry run done; templates are in {plan.out_dir}/.")
    plan.say(f"  REST API   {app['EndpointURL']}")
    plan.say(f"  WebSocket  {app['WebsocketConnectEndpointURL']}")
    plan.say(f"  Console    {console_url or '(no console in this checkout)'}")
    if plan.dry_run:
        return
    stages.choose(stages.learn(plan.client("cloudformation"), plan.stage, plan.region))
    plan.say(
        f"\n./dynavera now talks to {stack_name(plan.stage, 'app')}. Create a key with your own AWS credentials:\n"
        f"  ./dynavera keys create USER --stage {plan.stage}\n"
        f"then export DYNAVERA_API_KEY=<the key> and ./dynavera agents list"
    )
