"""A stage is one entry: its settings in .chalice/config.json and its policy file beside it, both
made from the dev stage's by `make stage STAGE=…` (`python -m deploy stage --stage …`); and
what a stage still lacks, said before any stack is touched."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from deploy.plan import ROOT, DeployError

CHALICE = ROOT / ".chalice"
TEMPLATE_STAGE = "dev"
# What CloudFormation, S3 and the stack names accept (the templates' Stage AllowedPattern).
STAGE_NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")


def _config() -> dict[str, Any]:
    return json.loads((CHALICE / "config.json").read_text())


def renamed(text: str, source: str, target: str) -> str:
    """A stage's settings or policy, moved to another stage: every resource name, the
    @connections stage path, the REST API's function (named with no suffix), and the entry's
    own stage, API Gateway stage and policy file."""
    moves = [
        (f"dynavera-{source}-", f"dynavera-{target}-"),
        (f"/{source}/", f"/{target}/"),
        (f"/aws/lambda/dynavera-{source}:", f"/aws/lambda/dynavera-{target}:"),
        (f'"DYNAVERA_STAGE": "{source}"', f'"DYNAVERA_STAGE": "{target}"'),
        (f'"api_gateway_stage": "{source}"', f'"api_gateway_stage": "{target}"'),
        (f'"policy-{source}.json"', f'"policy-{target}.json"'),
    ]
    for old, new in moves:
        text = text.replace(old, new)
    return text


def missing(stage: str) -> list[str]:
    """Everything `make deploy STAGE=stage` needs from this checkout that is not there."""
    if not STAGE_NAME.fullmatch(stage):
        return [f"the stage name {stage!r}: lower-case letters, digits and dashes, starting with a letter, 20 at most"]
    config = _config()["stages"]
    fix = f"run `make stage STAGE={stage}` to make them from the {TEMPLATE_STAGE} stage's"
    found = []
    entry = config.get(stage)
    if entry is None:
        found.append(f"the stage {stage!r} in .chalice/config.json (it has {', '.join(sorted(config))}): {fix}")
    elif entry.get("environment_variables", {}).get("DYNAVERA_STAGE") != stage:
        found.append(f"DYNAVERA_STAGE={stage} in the {stage!r} entry of .chalice/config.json: {fix}")
    policy = CHALICE / f"policy-{stage}.json"
    if not policy.is_file():
        found.append(f"its policy .chalice/policy-{stage}.json: {fix}")
    return found


def add(stage: str) -> list[Path]:
    """Write the stage's entry and policy from the dev stage's; never over an existing one."""
    if not STAGE_NAME.fullmatch(stage):
        raise DeployError(f"{stage!r} cannot name a stage: use lower-case letters, digits and dashes (20 at most).")
    config = _config()
    policy = CHALICE / f"policy-{stage}.json"
    if stage in config["stages"] or policy.exists():
        raise DeployError(f"Stage {stage!r} exists already (.chalice/config.json, {policy.name}); nothing was written.")
    source = json.dumps(config["stages"][TEMPLATE_STAGE])
    config["stages"][stage] = json.loads(renamed(source, TEMPLATE_STAGE, stage))
    policy_text = renamed((CHALICE / f"policy-{TEMPLATE_STAGE}.json").read_text(), TEMPLATE_STAGE, stage)
    policy.write_text(policy_text)
    (CHALICE / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return [CHALICE / "config.json", policy]
