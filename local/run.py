"""`make run`: the whole stack in the foreground, a demo user, key and agent; Ctrl-C stops it all."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time

import httpx

from local.stack import ROOT, Stack

DEMO_USER = "demo"
DEMO_AGENT = "fNIRS assistant"
KEY_FILE = ROOT / "build" / "demo_api_key"
SECRET_FILE = ROOT / "build" / "runtime_secret"


def demo_key(stack: Stack) -> str:
    from chalicelib.auth import user_for_key
    from chalicelib.errors import Unauthorized
    from chalicelib.keys import create_api_key
    from chalicelib.wiring import wire

    wire(stack.settings)

    if KEY_FILE.exists():
        try:
            if user_for_key(KEY_FILE.read_text().strip()) == DEMO_USER:
                return KEY_FILE.read_text().strip()
        except Unauthorized:
            pass
    key, _ = create_api_key(DEMO_USER, "demo")
    KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
    KEY_FILE.write_text(key + "\n")
    return key


def runtime_secret() -> str:
    """The runtime's secret, made once and kept (owner-only) where local tools can read it."""
    if not SECRET_FILE.exists():
        SECRET_FILE.parent.mkdir(parents=True, exist_ok=True)
        SECRET_FILE.touch(mode=0o600)
        SECRET_FILE.write_text(secrets.token_urlsafe(32) + "\n")
    return SECRET_FILE.read_text().strip()


def demo_agent(api_url: str, key: str) -> str:
    headers = {"Authorization": f"Bearer {key}"}
    agents = httpx.get(f"{api_url}/agents?limit=100", headers=headers).json()["agents"]
    for agent in agents:
        if agent["name"] == DEMO_AGENT:
            return agent["agent_id"]
    body = {
        "name": DEMO_AGENT,
        "description": "Answers questions on functional near-infrared spectroscopy from the demo corpus.",
        "config": {"collection": "fnirs", "top_k": 4, "max_tokens": 256, "temperature": 0.2},
    }
    response = httpx.post(f"{api_url}/agents", json=body, headers=headers)
    response.raise_for_status()
    return response.json()["agent_id"]


def main() -> int:
    stack = Stack(
        stage=os.environ.get("DYNAVERA_STAGE", "dev"), log_dir=ROOT / "build" / "logs", runtime_secret=runtime_secret()
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print("Starting the AWS endpoint and creating tables and queues …", flush=True)
        stack.start_aws()
        print("Starting the runtime (model and embedder load once) …", flush=True)
        stack.start_runtime()
        stack.start_gateway()
        stack.start_poller()
        key = demo_key(stack)
        agent_id = demo_agent(stack.api_url, key)
        aws = "moto (embedded)" if stack.moto else "the endpoint already running there (LocalStack?)"
        print(
            f"""
Dynavera is running.
  Console      {stack.api_url}/console/
  REST API     {stack.api_url}
  WebSocket    {stack.ws_url}
  Runtime      {stack.runtime_url}   (MCP at {stack.runtime_url}/mcp; secret in build/runtime_secret)
  AWS endpoint {stack.aws_url}   ({aws})
  Logs         {stack.log_dir}/

Demo user '{DEMO_USER}', API key (also in build/demo_api_key):
  {key}
Demo agent '{DEMO_AGENT}': {agent_id}

Ask it:
  ./dynavera ask {agent_id} "What is fNIRS?"
  curl -H "Authorization: Bearer {key}" {stack.api_url}/agents

Ctrl-C stops everything.""",
            flush=True,
        )
        while all(process.poll() is None for process in stack.processes):
            time.sleep(0.5)
        print("A service exited; see build/logs/. Stopping.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
