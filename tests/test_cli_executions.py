"""`./dynavera executions list|show|follow|stop` (DESIGN §8) against the gateway, as a user
types them: runs stay queued here (no executor), so a stop ends them and follow replays them."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from local.stack import Stack
from tests.conftest import ROOT, Api, create_key


def dynavera(stack: Stack, key: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **stack.env,
        "DYNAVERA_API_URL": stack.api_url,
        "DYNAVERA_WS_URL": stack.ws_url,
        "DYNAVERA_API_KEY": key,
        "XDG_CONFIG_HOME": str(tmp_path),  # no stage chosen: the URLs above are the target
    }
    return subprocess.run(
        [str(ROOT / "dynavera"), "executions", *args], check=False, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def user(rest_stack: Stack) -> tuple[str, Api, str]:
    key = create_key(rest_stack, f"cli-{uuid.uuid4().hex[:6]}")
    api = Api(rest_stack, key)
    agent = api.post("/agents", json={"name": "cli"})
    assert agent.status_code == 201, agent.text
    return key, api, agent.json()["agent_id"]


def test_list_show_stop_and_follow_a_run(rest_stack: Stack, user: Any, tmp_path: Path) -> None:
    key, api, agent_id = user
    older = api.started(agent_id, "first question")
    newer = api.started(agent_id, "second question")
    listed = dynavera(rest_stack, key, tmp_path, "list", agent_id)
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()
    assert [row.split()[:2] for row in rows[:2]] == [[newer, "pending"], [older, "pending"]]
    assert rows[0].endswith("second question")

    stopped = dynavera(rest_stack, key, tmp_path, "stop", older)
    assert (stopped.returncode, stopped.stdout.split()[:2]) == (0, [older, "stopped"])
    shown = dynavera(rest_stack, key, tmp_path, "show", older)
    assert shown.returncode == 0, shown.stderr
    assert "status     stopped" in shown.stdout and "query      first question" in shown.stdout

    followed = dynavera(rest_stack, key, tmp_path, "follow", older, "--json")
    assert followed.returncode == 1  # a run that did not complete
    assert '"type": "execution_stopped"' in followed.stdout and '"seq": 1' in followed.stdout
    plain = dynavera(rest_stack, key, tmp_path, "follow", older)
    assert (plain.returncode, plain.stderr.strip()) == (1, "(stopped)")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("show", "not-a-uuid"), "400 validation_error"),
        (("show", "00000000-0000-4000-8000-000000000000"), "404 not_found"),
        (("stop", "00000000-0000-4000-8000-000000000000"), "404 not_found"),
        (("list", "00000000-0000-4000-8000-000000000000"), "404 not_found"),
        (("list", "../../keys"), "404"),
        (("follow", "00000000-0000-4000-8000-000000000000"), "error: not_found"),
        (("follow", "'; drop"), "error: validation_error"),
    ],
)
def test_bad_ids_are_refused_with_the_apis_reason(
    rest_stack: Stack, user: Any, tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    answer = dynavera(rest_stack, user[0], tmp_path, *args)
    assert answer.returncode != 0 and said in answer.stderr, answer.stderr


def test_another_users_run_is_not_found(rest_stack: Stack, user: Any, tmp_path: Path) -> None:
    _, api, agent_id = user
    execution_id = api.started(agent_id)
    stranger = create_key(rest_stack, f"stranger-{uuid.uuid4().hex[:6]}")
    for command in ("show", "stop", "follow"):
        answer = dynavera(rest_stack, stranger, tmp_path, command, execution_id)
        assert answer.returncode != 0 and "not_found" in answer.stderr, (command, answer.stderr)
    assert api.get(f"/executions/{execution_id}").json()["status"] == "pending"


def ask(stack: Stack, key: str, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {
        **stack.env,
        "DYNAVERA_API_URL": stack.api_url,
        "DYNAVERA_WS_URL": stack.ws_url,
        "DYNAVERA_API_KEY": key,
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    return subprocess.Popen(
        [str(ROOT / "dynavera"), "ask", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_ask_sends_this_runs_settings_and_a_bad_one_is_refused(rest_stack: Stack, user: Any, tmp_path: Path) -> None:
    key, api, agent_id = user
    before = len(api.get(f"/agents/{agent_id}/executions").json()["executions"])
    refused = ask(rest_stack, key, tmp_path, agent_id, "too many", "--top-k", "99")
    _, err = refused.communicate(timeout=60)
    assert refused.returncode == 1 and "config.top_k" in err and "validation_error" in err
    wrong_type = ask(rest_stack, key, tmp_path, agent_id, "q", "--max-tokens", "lots")
    assert wrong_type.wait(timeout=60) == 2  # argparse: not an integer, nothing sent
    assert len(api.get(f"/agents/{agent_id}/executions").json()["executions"]) == before

    # No executor here: the run stays queued until it is stopped, and ask then ends with it.
    asking = ask(rest_stack, key, tmp_path, agent_id, "tuned", "--max-tokens", "32", "--temperature", "0", "--json")
    try:
        assert asking.stdout is not None
        started = json.loads(asking.stdout.readline())
        assert started["type"] == "execution_started"
        execution = api.get(f"/executions/{started['execution_id']}").json()
        assert (execution["config"]["max_tokens"], execution["config"]["temperature"]) == (32, 0)
        api.post(f"/executions/{started['execution_id']}/stop")
        assert asking.wait(timeout=60) == 1  # a run that did not complete
    finally:
        asking.kill()
