"""`python -m deploy up|down|stage --stage STAGE …`: what `make deploy`, `make destroy`,
`make stage` and `./dynavera deploy|destroy` run."""

from __future__ import annotations

import argparse
import os
import sys

import boto3

from deploy import rollout, stage
from deploy.plan import DeployError, Plan, shown_path

RUNTIME_OPTIONS = {
    "runtime_size": "RuntimeSize",
    "min_tasks": "MinTasks",
    "max_tasks": "MaxTasks",
    "alarm_topic_arn": "AlarmTopicArn",
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="deploy", description="Roll a Dynavera stage out to AWS, or tear it down.")
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "stage", help="add a stage: its .chalice/config.json entry and policy, made from the dev stage's"
    ).add_argument("--stage", required=True)
    for name, text in (("up", "deploy or update every part of the stage"), ("down", "delete the stage's stacks")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--stage", required=True, help="a stage of .chalice/config.json (dev, prod)")
        command.add_argument("--region", help="default: AWS_REGION, AWS_DEFAULT_REGION, then your profile's region")
        command.add_argument(
            "--dry-run", action="store_true", help="print every command and write the templates; call no AWS API"
        )
        command.add_argument("--yes", action="store_true", help="apply every change set without asking (CI)")
        if name == "up":
            command.add_argument("--vpc-id", required=True, help="the VPC of the runtime and the executor")
            command.add_argument(
                "--subnets", required=True, help="two or more private subnet ids (with a NAT gateway), comma-separated"
            )
            command.add_argument(
                "--runtime-size", help="Fargate CPU and memory per task, e.g. 2vCPU-4GB (infra/runtime.yaml)"
            )
            command.add_argument("--min-tasks")
            command.add_argument("--max-tasks")
            command.add_argument("--alarm-topic-arn", help="SNS topic the alarms notify")
            command.add_argument(
                "--demo", action="store_true", help="then upload the shipped corpus for a demo user, through the API"
            )
    return root


def region_of(given: str | None, dry_run: bool) -> str:
    """The region as users expect it: the option, then AWS_REGION (which botocore alone ignores),
    then AWS_DEFAULT_REGION and the profile's."""
    region = given or os.environ.get("AWS_REGION") or boto3.Session().region_name
    if region:
        return region
    if dry_run:
        return "us-east-1"
    raise DeployError("No AWS region: pass REGION=… (--region), or set AWS_REGION or a region in your AWS profile.")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "stage":
            written = stage.add(args.stage)
            print(f"Stage {args.stage} added: {', '.join(shown_path(p) for p in written)}. Commit them, then deploy:")
            print(f"  make deploy STAGE={args.stage} VPC_ID=vpc-… SUBNETS=subnet-…,subnet-…")
            return 0
        plan = Plan(stage=args.stage, region=region_of(args.region, args.dry_run), dry_run=args.dry_run, yes=args.yes)
        if args.command == "up":
            subnets = [s.strip() for s in args.subnets.split(",") if s.strip()]
            extra = {
                param: str(getattr(args, option)) for option, param in RUNTIME_OPTIONS.items() if getattr(args, option)
            }
            rollout.up(plan, rollout.Rollout(args.vpc_id, subnets, extra, with_demo=args.demo))
        else:
            rollout.down(plan)
    except DeployError as err:
        print(f"\ndeploy: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
