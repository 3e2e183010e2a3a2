"""The rollout, in order: data stack, registry, runtime image, runtime stack, store stack,
console stack, the Chalice app, the console's files (and, for a demo, the shipped corpus); and
the teardown, in the reverse order.

`STEPS` is the one list of them: a new stack is one function and one entry there, and `down`
deletes every step's stack in the reverse order, emptying the buckets the entry names first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cli import stages
from deploy import app_template, console, demo, image, prerequisites, store
from deploy.plan import INFRA, DeployError, Plan, stack_name
from deploy.stacks import delete_stack, deploy_stack, describe, empty_bucket, kept_resources, read_template


@dataclass
class Rollout:
    """What `make deploy` was given, and what the steps learn for the ones after them."""

    vpc_id: str = ""
    subnets: Sequence[str] = ()
    runtime_parameters: dict[str, str] = field(default_factory=dict)
    with_demo: bool = False
    image_tag: str = ""
    console_url: str = ""


@dataclass(frozen=True)
class Step:
    title: str
    run: Callable[[Plan, Rollout], None]
    stack: str | None = None  # the stack it deploys, deleted by `down`
    template: str | None = None  # its infra/ template, for what a teardown keeps
    empty_first: tuple[str, ...] = ()  # outputs naming buckets to empty before deleting it
    clear: Callable[[Plan], None] | None = None  # whatever else must go before its stack can
    when: Callable[[Rollout], bool] = lambda rollout: True  # a part this checkout or rollout may leave out


def deploy_data(plan: Plan, rollout: Rollout) -> None:
    deploy_stack(plan, "data", {"Stage": plan.stage}, template=INFRA / "data.yaml")


def deploy_registry(plan: Plan, rollout: Rollout) -> None:
    parameters = {"Stage": plan.stage, "ApiGatewayLogsRole": api_gateway_logs_role(plan)}
    deploy_stack(plan, "registry", parameters, template=INFRA / "registry.yaml", capabilities=("CAPABILITY_IAM",))


def api_gateway_logs_role(plan: Plan) -> str:
    """`existing` when the account's API Gateway already writes logs through a role the registry
    stack does not own (another stage's, or the account's own); otherwise the stack makes one.
    API Gateway needs it, once per account and region, before a stage may have access logs."""
    if plan.dry_run:
        plan.show(["aws", "apigateway", "get-account"], "ApiGatewayLogsRole=existing when it names a role")
        return "create"
    current = plan.client("apigateway").get_account().get("cloudwatchRoleArn", "")
    registry = describe(plan.client("cloudformation"), stack_name(plan.stage, "registry"))
    ours = {o["OutputKey"]: o["OutputValue"] for o in (registry or {}).get("Outputs", [])}.get("ApiGatewayLogsRoleArn")
    return "existing" if current and current != ours else "create"


def publish_runtime_image(plan: Plan, rollout: Rollout) -> None:
    rollout.image_tag = image.content_tag()
    plan.say(f"  tagged by content: {rollout.image_tag}")
    registry = plan.stack_outputs("registry")
    image.publish_image(plan, registry["RepositoryName"], registry["RepositoryUri"], rollout.image_tag)


def deploy_runtime(plan: Plan, rollout: Rollout) -> None:
    parameters = {
        "Stage": plan.stage,
        "VpcId": rollout.vpc_id,
        "PrivateSubnetIds": ",".join(rollout.subnets),
        "ImageTag": rollout.image_tag,
        **rollout.runtime_parameters,
    }
    deploy_stack(plan, "runtime", parameters, template=INFRA / "runtime.yaml", capabilities=("CAPABILITY_IAM",))


def deploy_store(plan: Plan, rollout: Rollout) -> None:
    alarm_topic_arn = rollout.runtime_parameters.get("AlarmTopicArn", "")
    store.deploy(plan, rollout.vpc_id, rollout.subnets, rollout.image_tag, alarm_topic_arn)


def deploy_console_stack(plan: Plan, rollout: Rollout) -> None:
    rollout.console_url = console.deploy_console_stack(plan)["ConsoleUrl"]


def deploy_app(plan: Plan, rollout: Rollout) -> None:
    origin = console.origin(rollout.console_url)
    template = app_template.package(plan, origin)
    plan.say(f"  final template: {template}")
    bucket = plan.stack_outputs("registry")["ArtifactBucketName"]
    runtime, data = plan.stack_outputs("runtime"), plan.stack_outputs("data")
    app_template.deploy_app(plan, template, runtime, data, bucket, origin)


def publish_console(plan: Plan, rollout: Rollout) -> None:
    app = plan.stack_outputs("app")
    api_url, ws_url = app["EndpointURL"], app["WebsocketConnectEndpointURL"]
    # The documents bucket's CORS names the console's origin, which exists only after the data
    # stack does: the data stack learns it here (a re-run keeps it as a previous value).
    parameters = {"Stage": plan.stage, "ConsoleOrigin": console.origin(rollout.console_url)}
    deploy_stack(plan, "data", parameters, template=INFRA / "data.yaml")
    console.deploy_console_stack(plan, api_url, ws_url, plan.stack_outputs("data")["DocumentsBucketName"])
    console.publish(plan, plan.stack_outputs("console"), api_url, ws_url)


def upload_demo(plan: Plan, rollout: Rollout) -> None:
    demo.upload_corpus(plan)


def _has_console(rollout: Rollout) -> bool:
    return console.present()


STEPS = (
    Step("data: DynamoDB tables, runs queue and its DLQ", deploy_data, "data", "data.yaml"),
    Step(
        "registry: runtime image repository, artifact bucket, API Gateway's log role",
        deploy_registry,
        "registry",
        "registry.yaml",
        empty_first=("ArtifactBucketName",),
        clear=image.delete_images,
    ),
    Step("runtime image, built and pushed unless its tag is there", publish_runtime_image),
    Step("runtime: ECS service behind an internal ALB, autoscaling, alarms", deploy_runtime, "runtime", "runtime.yaml"),
    Step("store: Chroma server on EFS and the indexer, in the runtime cluster", deploy_store, "store", "store.yaml"),
    Step(
        "console: bucket and CloudFront distribution with its security headers",
        deploy_console_stack,
        "console",
        "console.yaml",
        empty_first=("ConsoleBucketName",),
        when=_has_console,
    ),
    Step("app: chalice package --merge-template, then its stack (REST, WebSocket, Lambdas)", deploy_app, "app"),
    Step(
        "console: its Content-Security-Policy with the API's URLs, its files and config.json",
        publish_console,
        when=_has_console,
    ),
    Step(
        "demo: the shipped corpus into the demo user's collection, through the API",
        upload_demo,
        when=lambda rollout: rollout.with_demo,
    ),
)


def up(plan: Plan, rollout: Rollout) -> None:
    prerequisites.check_before_rollout(plan, rollout.subnets)
    steps = [step for step in STEPS if step.when(rollout)]
    for number, step in enumerate(steps, 1):
        plan.say(f"\n[{number}/{len(steps)}] {step.title}")
        step.run(plan, rollout)
    _report(plan, rollout.console_url)


def down(plan: Plan) -> None:
    prerequisites.check_identity(plan)
    plan.say(f"\nTearing down stage {plan.stage} in {plan.region}")
    steps = [step for step in reversed(STEPS) if step.stack and step.when(Rollout())]
    names = ", ".join(stack_name(plan.stage, step.stack or "") for step in steps)
    if not plan.dry_run and not plan.confirm(f"Delete {names}?"):
        raise DeployError(f"Stopped; nothing of stage {plan.stage} was deleted.")
    for step in steps:
        assert step.stack is not None
        for output in step.empty_first:
            empty_bucket(plan, step.stack, output)
        if step.clear is not None:
            step.clear(plan)
        delete_stack(plan, step.stack)
    plan.say(f"\nDone. Kept on purpose (DeletionPolicy Retain); `make deploy STAGE={plan.stage}` adopts them again:")
    for step in STEPS:
        if step.template and step.when(Rollout()):
            for logical_id, kind in kept_resources(read_template(INFRA / step.template)):
                plan.say(f"  {stack_name(plan.stage, step.stack or '')}: {logical_id} ({kind})")
    plan.say("The README's \"Tearing it down\" says what they cost and how to remove them for good.")


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
