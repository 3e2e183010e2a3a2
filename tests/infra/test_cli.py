"""The CLI against a stage's tables and stacks, on the suite's moto server: `keys create` for an
explicit or a local endpoint (and its refusals), `use` learning a stage's URLs, and `deploy`
handing its refusals over from the rollout."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import DRY_RUN_SUBNETS, REGION, ROOT, create_stack

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS::")


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [str(ROOT / "dynavera"), *args], env={**base, **env}, capture_output=True, text=True, timeout=120, check=False
    )


def _on_moto(home: Path, moto_url: str) -> dict[str, str]:
    """The environment of a user whose AWS is the suite's moto server."""
    return {
        "HOME": str(home),
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def _stored_user(aws: Callable[[str], Any], stage: str, key: str) -> str | None:
    item = (
        aws("dynamodb")
        .get_item(
            TableName=f"dynavera-{stage}-api-keys", Key={"key_hash": {"S": hashlib.sha256(key.encode()).hexdigest()}}
        )
        .get("Item")
    )
    return item["user_id"]["S"] if item else None


@pytest.fixture(scope="module")
def key_stage(aws: Callable[[str], Any]) -> str:
    create_stack(aws("cloudformation"), "dynavera-keytest-data", "data.yaml", {"Stage": "keytest"})
    return "keytest"


def test_keys_create_with_an_explicit_endpoint_writes_to_that_stages_table(
    aws: Callable[[str], Any], moto_url: str, key_stage: str, tmp_path: Path
) -> None:
    env = {**_on_moto(tmp_path, moto_url), "AWS_REGION": REGION}
    done = _cli(["keys", "create", "alice", "--stage", key_stage], env)
    assert done.returncode == 0, done.stderr
    assert _stored_user(aws, key_stage, done.stdout.strip().splitlines()[-1]) == "alice"


def test_keys_create_local_takes_the_endpoint_from_localstack_settings(
    aws: Callable[[str], Any], moto_url: str, key_stage: str, tmp_path: Path
) -> None:
    done = _cli(
        ["keys", "create", "bob", "--local", "--stage", key_stage],
        {"HOME": str(tmp_path), "LOCALSTACK_HOST": moto_url.split("://", 1)[1]},
    )
    assert done.returncode == 0, done.stderr
    assert _stored_user(aws, key_stage, done.stdout.strip().splitlines()[-1]) == "bob"


def test_keys_create_with_nothing_set_fails_clearly_instead_of_writing_to_localhost(tmp_path: Path) -> None:
    done = _cli(["keys", "create", "carol"], {"HOME": str(tmp_path)})
    assert done.returncode != 0
    assert "--stage" in done.stderr and "--local" in done.stderr
    assert not done.stdout.strip()


def test_keys_create_for_a_stage_without_credentials_says_so(tmp_path: Path) -> None:
    done = _cli(["keys", "create", "dave", "--stage", "dev", "--region", REGION], {"HOME": str(tmp_path)})
    assert done.returncode != 0
    assert "no AWS credentials" in done.stderr and not done.stdout.strip()


def test_use_learns_a_stages_urls_from_its_stack_outputs(
    aws: Callable[[str], Any], moto_url: str, tmp_path: Path
) -> None:
    # A stand-in for the app's stack with the outputs Chalice's package declares (moto cannot run SAM).
    stand_in = {
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {
            "EndpointURL": {"Value": "https://abc123.execute-api.us-east-1.amazonaws.com/usetest/"},
            "WebsocketConnectEndpointURL": {"Value": "wss://def456.execute-api.us-east-1.amazonaws.com/usetest/"},
        },
    }
    aws("cloudformation").create_stack(StackName="dynavera-usetest-app", TemplateBody=json.dumps(stand_in))
    env = _on_moto(tmp_path, moto_url)
    done = _cli(["use", "usetest", "--region", REGION], env)
    assert done.returncode == 0, done.stderr
    chosen = json.loads((tmp_path / ".config" / "dynavera" / "stage.json").read_text())
    assert chosen["api_url"] == "https://abc123.execute-api.us-east-1.amazonaws.com/usetest"
    assert chosen["ws_url"] == "wss://def456.execute-api.us-east-1.amazonaws.com/usetest"
    # The chosen stage is where `agents list` and `ask` go; a missing key says how to make one.
    listed = _cli(["agents", "list"], {"HOME": str(tmp_path)})
    assert listed.returncode != 0 and "keys create USER --stage usetest" in listed.stderr
    assert _cli(["use", "local"], {"HOME": str(tmp_path)}).returncode == 0
    assert not (tmp_path / ".config" / "dynavera" / "stage.json").exists()


def test_use_of_a_stage_never_deployed_says_to_deploy_it(moto_url: str, tmp_path: Path) -> None:
    env = _on_moto(tmp_path, moto_url)
    done = _cli(["use", "nowhere", "--region", REGION], env)
    assert done.returncode != 0 and "make deploy STAGE=nowhere" in done.stderr


def test_deploy_refuses_too_few_subnets_and_unknown_stages(tmp_path: Path) -> None:
    one = _cli(
        ["deploy", "--stage", "dev", "--vpc-id", "vpc-1", "--subnets", DRY_RUN_SUBNETS.split(",")[0], "--dry-run"],
        {"HOME": str(tmp_path)},
    )
    assert one.returncode != 0 and "at least two private subnets" in one.stderr
    unknown = _cli(
        ["deploy", "--stage", "qa", "--vpc-id", "vpc-1", "--subnets", DRY_RUN_SUBNETS, "--dry-run"],
        {"HOME": str(tmp_path)},
    )
    assert unknown.returncode != 0 and ".chalice/config.json" in unknown.stderr
