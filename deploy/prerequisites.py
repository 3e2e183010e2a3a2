"""Everything a rollout needs, checked before its first stack so it never stops between two:
the stage's entry, a region, credentials, enough subnets, Chalice, a running Docker daemon, and
npm when there is a console. Every problem is named at once, each with what to do."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from deploy import console, stage
from deploy.plan import DeployError, Plan

DOCKER_TIMEOUT_SECONDS = 20


def chalice_command() -> Path:
    """The chalice CLI installed beside this Python (make deploy's virtualenv)."""
    return Path(sys.executable).parent / "chalice"


def docker_problem(run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> str | None:
    """None when a Docker daemon answers; else why not. The binary alone builds nothing."""
    if shutil.which("docker") is None:
        return "Docker is not installed (or not on PATH): the runtime image is built with it."
    try:
        done = run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=DOCKER_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"The Docker daemon did not answer within {DOCKER_TIMEOUT_SECONDS} s: is it running?"
    if done.returncode != 0 or not done.stdout.strip():
        detail = (done.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"Docker is installed but its daemon does not answer ({detail}): start Docker, then run again."
    return None


def local_problems(plan: Plan, subnets: Sequence[str]) -> list[str]:
    """What this machine and checkout lack; a dry run needs only the stage and Chalice."""
    problems = stage.missing(plan.stage)
    if len(subnets) < 2:
        problems.append("SUBNETS needs at least two private subnets in different Availability Zones, comma-separated.")
    if not chalice_command().exists():
        problems.append("Chalice is not installed in this virtualenv: run `make deploy-tools` (or `make install`).")
    if plan.dry_run:
        return problems
    problem = docker_problem()
    if problem:
        problems.append(problem)
    if console.present() and shutil.which("npm") is None:
        problems.append("npm is not on PATH: the console is built with Node.js 20+ and npm (https://nodejs.org).")
    return problems


def check_identity(plan: Plan) -> None:
    plan.show(["aws", "sts", "get-caller-identity"])
    if plan.dry_run:
        plan.say(f"Dry run for stage {plan.stage} in {plan.region}: nothing is called in AWS.")
        return
    try:
        plan.account = plan.client("sts").get_caller_identity()["Account"]
    except (BotoCoreError, ClientError) as err:
        raise DeployError(
            f"No usable AWS credentials ({err}). "
            "Configure them (aws configure, aws sso login, or AWS_PROFILE) and run again."
        ) from err
    plan.say(f"Stage {plan.stage} in account {plan.account}, region {plan.region}")


def check_before_rollout(plan: Plan, subnets: Sequence[str]) -> None:
    problems = local_problems(plan, subnets)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise DeployError(f"Nothing was deployed; first, these are missing:\n{listed}")
    check_identity(plan)
