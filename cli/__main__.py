"""./dynavera: keys, agents, ask, ingest and bench, from a terminal."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEMO_KEY_FILE = ROOT / "build" / "demo_api_key"


def _local_aws_defaults() -> None:
    # Without an endpoint of their own, commands talk to the local stack's (DESIGN §7).
    os.environ.setdefault("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    if os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1"):
        for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_DEFAULT_REGION", "us-east-1")):
            os.environ.setdefault(name, value)


def api_key(args: argparse.Namespace) -> str:
    key = args.key or os.environ.get("DYNAVERA_API_KEY")
    if not key and DEMO_KEY_FILE.exists():
        key = DEMO_KEY_FILE.read_text().strip()
    if not key:
        sys.exit("dynavera: no API key; pass --key, set DYNAVERA_API_KEY, or run 'make run' for the demo key.")
    return key


def keys_create(args: argparse.Namespace) -> int:
    _local_aws_defaults()
    from chalicelib.auth import create_api_key
    from chalicelib.settings import Settings, bind

    bind(Settings.from_env())

    print(f"API key for {args.user} (shown once; only its hash is stored):", file=sys.stderr)
    print(create_api_key(args.user))
    return 0


def _api(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    import httpx

    url = os.environ.get("DYNAVERA_API_URL", "http://127.0.0.1:8000").rstrip("/") + path
    try:
        response = httpx.request(method, url, json=body, headers={"Authorization": f"Bearer {api_key(args)}"}, timeout=30)
    except httpx.HTTPError as err:
        sys.exit(f"dynavera: cannot reach the API at {url}: {err}. Is 'make run' running?")
    if response.status_code >= 400:
        error = response.json().get("error", {}) if response.content else {}
        sys.exit(f"dynavera: {response.status_code} {error.get('code', '')}: {error.get('message', response.text)}")
    return response.json() if response.content else None


def agents_list(args: argparse.Namespace) -> int:
    token = None
    while True:
        page = _api(args, "GET", "/agents?limit=100" + (f"&next_token={token}" if token else ""))
        for agent in page["agents"]:
            print(f"{agent['agent_id']}  {agent['name']}  ({agent['config'].get('collection')})")
        token = page["next_token"]
        if not token:
            return 0


def agents_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "description": args.description or ""}
    if args.collection:
        body["config"] = {"collection": args.collection}
    agent = _api(args, "POST", "/agents", body)
    print(agent["agent_id"])
    return 0


def ask(args: argparse.Namespace) -> int:
    from cli.ask import ask_over_websocket

    url = os.environ.get("DYNAVERA_WS_URL", "ws://127.0.0.1:8000/ws")
    return ask_over_websocket(url, api_key(args), args.agent_id, args.question, as_json=args.json)


def ingest(args: argparse.Namespace) -> int:
    from mcp_container.ingest import main as ingest_main

    argv = [args.path, "--collection", args.collection]
    if args.db:
        argv += ["--db", args.db]
    return ingest_main(argv)


def bench(args: argparse.Namespace) -> int:
    import runpy

    sys.argv = [str(ROOT / "bench" / "run.py")]
    runpy.run_path(sys.argv[0], run_name="__main__")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="dynavera", description="Dynavera: AI agents, run serverlessly.")
    root.add_argument("--key", help="API key (default: $DYNAVERA_API_KEY, then the demo key of 'make run')")
    commands = root.add_subparsers(dest="command", required=True)

    keys = commands.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create an API key for USER; prints it as the last line")
    create.add_argument("user")
    create.set_defaults(func=keys_create)

    agents = commands.add_parser("agents", help="agents").add_subparsers(dest="agents_command", required=True)
    agents.add_parser("list", help="list your agents").set_defaults(func=agents_list)
    new = agents.add_parser("create", help="create an agent; prints its id")
    new.add_argument("name")
    new.add_argument("--description")
    new.add_argument("--collection", help="ChromaDB collection it answers from (default fnirs)")
    new.set_defaults(func=agents_create)

    question = commands.add_parser("ask", help="ask an agent; streams the answer over the WebSocket")
    question.add_argument("agent_id")
    question.add_argument("question")
    question.add_argument("--json", action="store_true", help="print the raw frames")
    question.set_defaults(func=ask)

    docs = commands.add_parser("ingest", help="add a folder of .md, .txt and .pdf files to a collection")
    docs.add_argument("path")
    docs.add_argument("--collection", required=True)
    docs.add_argument("--db", help="ChromaDB directory (default $DYNAVERA_RAG_DB or build/rag_db)")
    docs.set_defaults(func=ingest)

    commands.add_parser("bench", help="run the benchmarks and print their ratios").set_defaults(func=bench)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
