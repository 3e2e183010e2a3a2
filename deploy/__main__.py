"""`python -m deploy up|down --stage STAGE …`: what `make deploy`, `make destroy` and
`./dynavera deploy|destroy` run."""

from __future__ import annotations

import argparse
import json
import sys

import boto3

from deploy import rollout
from deploy.plan import ROOT, DeployError, Plan

RUNTIME_OPTIONS = {
    "runtime_size": "RuntimeSize",
    "min_tasks": "MinTasks",
    "max_tasks": "MaxTasks",
    "alarm_topic_arn": "AlarmTopicArn",
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="deploy", description="Roll a Dynavera stage out to AWS, or tear it down.")
    commands = root.add_subparsers(dest="command", required=True)
    for name, text in (("up", "deploy or update every part of the stage"), ("down", "delete the stage's stacks")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--stage", required=True, help="a stage of .chalice/config.json (dev, prod)")
        command.add_argument("--region", help="default: AWS_REGION, then your AWS profile's region")
        command.add_argument(
            "--dry-run", action="store_true", help="print every command and write the templates; call no AWS API"
        )
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


def _known_stage(stage: str) -> None:
    stages = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]
    if stage not in stages:
        raise DeployError(
            f"Stage {stage!r} is not in .chalice/config.json (it has {', '.join(sorted(stages))}). "
            f"Add it there, with its policy .chalice/policy-{stage}.json, then run again."
        )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    region = args.region or boto3.Session().region_name or ("us-east-1" if args.dry_run else None)
    try:
        _known_stage(args.stage)
        if region is None:
            raise DeployError("No AWS region: pass REGION=… (--region) or set AWS_REGION.")
        plan = Plan(stage=args.stage, region=region, dry_run=args.dry_run)
        if args.command == "up":
            subnets = [s.strip() for s in args.subnets.split(",") if s.strip()]
            extra = {
                param: str(getattr(args, option)) for option, param in RUNTIME_OPTIONS.items() if getattr(args, option)
            }
            rollout.up(plan, args.vpc_id, subnets, extra, with_demo=args.demo)
        else:
            rollout.down(plan)
    except DeployError as err:
        print(f"\ndeploy: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
