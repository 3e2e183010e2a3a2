"""Which stage the CLI talks to: the local stack by default, or a deployed stage whose URLs were
read from its stacks' outputs (`./dynavera use STAGE`, and `make deploy` at its end)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LOCAL_API_URL = "http://127.0.0.1:8000"
LOCAL_WS_URL = "ws://127.0.0.1:8000/ws"


@dataclass(frozen=True)
class Stage:
    name: str
    region: str
    api_url: str
    ws_url: str
    console_url: str | None = None


def stage_file(env: Mapping[str, str] = os.environ) -> Path:
    """Per user, as the AWS CLI keeps its profiles: the stage chosen holds across terminals."""
    config_home = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(config_home) / "dynavera" / "stage.json"


def current(env: Mapping[str, str] = os.environ) -> Stage | None:
    path = stage_file(env)
    if not path.is_file():
        return None
    return Stage(**json.loads(path.read_text()))


def choose(stage: Stage | None, env: Mapping[str, str] = os.environ) -> None:
    """Remember a deployed stage, or forget it (None: back to the local stack)."""
    path = stage_file(env)
    if stage is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(stage), indent=2) + "\n")


def learn(cloudformation: Any, name: str, region: str) -> Stage:
    """A stage's URLs from its stacks: the Chalice app's (required) and the console's (if any)."""
    app = _outputs(cloudformation, f"dynavera-{name}-app")
    if app is None:
        raise LookupError(
            f"No stack dynavera-{name}-app in {region}: deploy the stage first (make deploy STAGE={name} …)."
        )
    console = _outputs(cloudformation, f"dynavera-{name}-console") or {}
    return Stage(
        name=name,
        region=region,
        api_url=app["EndpointURL"].rstrip("/"),
        ws_url=app["WebsocketConnectEndpointURL"].rstrip("/"),
        console_url=console.get("ConsoleUrl"),
    )


def _outputs(cloudformation: Any, stack: str) -> dict[str, str] | None:
    from botocore.exceptions import ClientError

    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as err:
        if "does not exist" in str(err):
            return None
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
