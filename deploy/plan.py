"""What a rollout shares between its steps: the stage, the AWS clients, the stack outputs read
so far, and a dry-run switch that prints each AWS call as the equivalent CLI command instead.

The AWS calls go through boto3 (no AWS CLI needed, and the tests run them on a moto server);
the lines printed are the AWS CLI commands doing the same, so a dry run reads as a runbook.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
BUILD = ROOT / "build" / "deploy"


class DeployError(RuntimeError):
    """A rollout cannot go on; the message says what to do."""


def stack_name(stage: str, part: str) -> str:
    return f"dynavera-{stage}-{part}"


def shown_path(path: Path) -> str:
    """A path as a user would type it from the repository's root."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


class Outputs(dict[str, str]):
    """A stack's outputs; in a dry run, a value not read yet stands as `<stack.Key>`."""

    def __init__(self, stack: str, values: dict[str, str] | None = None, dry_run: bool = False) -> None:
        super().__init__(values or {})
        self.stack = stack
        self.dry_run = dry_run

    def __missing__(self, key: str) -> str:
        if self.dry_run:
            return f"<{self.stack}.{key}>"
        raise DeployError(f"Stack {self.stack} has no output {key}; was it deployed from this repository's infra/?")


@dataclass
class Plan:
    """One stage's rollout or teardown."""

    stage: str
    region: str
    dry_run: bool = False
    aws: Callable[[str], Any] | None = None  # service name → client; boto3's default chain when None
    poll_seconds: int = 10
    build_dir: Path = BUILD  # where the stage's templates and package are written
    yes: bool = False  # apply every change set without asking (YES=1, for CI)
    ask: Callable[[str], str] = input
    account: str | None = None  # read by the identity check
    run_command: Callable[[Sequence[str], Path, str | None, dict[str, str]], None] | None = None
    outputs: dict[str, Outputs] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.aws is None:
            self.aws = boto3.Session(region_name=self.region).client
        if self.run_command is None:
            self.run_command = _run

    @property
    def out_dir(self) -> Path:
        return self.build_dir / self.stage

    def client(self, service: str) -> Any:
        assert self.aws is not None
        if service not in self._clients:
            self._clients[service] = self.aws(service)
        return self._clients[service]

    def say(self, line: str) -> None:
        print(line, flush=True)

    def show(self, command: Sequence[str], note: str = "") -> None:
        """Print a command as a user would type it."""
        self.say("  $ " + shlex.join(command) + (f"    # {note}" if note else ""))

    def command(
        self,
        command: Sequence[str],
        cwd: Path = ROOT,
        stdin: str | None = None,
        local: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        """Run a command (a dry run runs only the local ones, which call no AWS API)."""
        shown = [f"{name}={value}" for name, value in (env or {}).items()]
        self.show([*shown, *command])
        if self.dry_run and not local:
            return
        assert self.run_command is not None
        region = {"AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region}
        self.run_command(command, cwd, stdin, {**region, **(env or {})})

    def stack_outputs(self, part: str) -> Outputs:
        from deploy.stacks import read_outputs

        name = stack_name(self.stage, part)
        if name not in self.outputs:
            values = {} if self.dry_run else read_outputs(self.client("cloudformation"), name)
            self.outputs[name] = Outputs(name, values, self.dry_run)
        return self.outputs[name]

    def account_id(self) -> str:
        if self.account is None:
            self.account = self.client("sts").get_caller_identity()["Account"]
        return self.account

    def confirm(self, question: str) -> bool:
        """Yes with YES=1; otherwise the person at the terminal says, and no terminal means no."""
        if self.yes:
            return True
        if self.ask is input and not sys.stdin.isatty():
            raise DeployError(f"{question} There is no terminal to ask: run with YES=1 to apply without asking.")
        return self.ask(f"  {question} [y/N] ").strip().lower() in ("y", "yes")


def _run(command: Sequence[str], cwd: Path, stdin: str | None, env: dict[str, str]) -> None:
    try:
        done = subprocess.run(list(command), cwd=cwd, input=stdin, text=True, check=False, env={**os.environ, **env})
    except FileNotFoundError as err:
        raise DeployError(
            f"{command[0]} is not installed (or not on PATH); see the README's deploy prerequisites."
        ) from err
    if done.returncode != 0:
        raise DeployError(f"{command[0]} failed (exit {done.returncode}): {shlex.join(command)}")
