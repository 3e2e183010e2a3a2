"""./dynavera: keys, agents, ask, executions, collections, upload and bench, from a terminal; deploy and pick
a stage."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cli import stages
from cli.api import Api, ApiError

ROOT = Path(__file__).resolve().parent.parent
DEMO_KEY_FILE = ROOT / "build" / "demo_api_key"
ROLLOUT_COMMANDS = {
    "deploy": "roll a stage out to AWS, as make deploy",
    "destroy": "delete a stage's stacks, as make destroy",
}


def api_key(args: argparse.Namespace) -> str:
    key = args.key or os.environ.get("DYNAVERA_API_KEY")
    deployed = stages.current()
    if not key and deployed is None and DEMO_KEY_FILE.exists():
        key = DEMO_KEY_FILE.read_text().strip()
    if not key and deployed is not None:
        sys.exit(
            f"dynavera: no API key for stage {deployed.name}; create one with "
            f"'./dynavera keys create USER --stage {deployed.name}', then pass --key or set DYNAVERA_API_KEY."
        )
    if not key:
        sys.exit("dynavera: no API key; pass --key, set DYNAVERA_API_KEY, or run 'make run' for the demo key.")
    return key


def api_url() -> str:
    deployed = stages.current()
    return os.environ.get("DYNAVERA_API_URL") or (deployed.api_url if deployed else stages.LOCAL_API_URL)


def ws_url() -> str:
    deployed = stages.current()
    return os.environ.get("DYNAVERA_WS_URL") or (deployed.ws_url if deployed else stages.LOCAL_WS_URL)


def _key_table(args: argparse.Namespace) -> str:
    """Bind chalicelib to the stage's key table (see cli.key_store); where that is, in words."""
    from cli import key_store

    where = key_store.target(args.stage, args.local, args.region)
    from chalicelib.settings import Settings
    from chalicelib.wiring import wire

    wire(Settings.from_env())  # the environment target() arranged
    return where


def keys_create(args: argparse.Namespace) -> int:
    from chalicelib.keys import create_api_key
    from cli import key_store

    where = _key_table(args)
    try:
        key, _ = create_api_key(args.user, args.name)
    except key_store.TABLE_ERRORS as err:
        sys.exit(f"dynavera: cannot write to {where}: {err}")
    print(f"API key for {args.user} in {where} (shown once; only its hash is stored):", file=sys.stderr)
    print(key)
    return 0


def keys_list(args: argparse.Namespace) -> int:
    from chalicelib.keys import list_keys
    from cli import key_store

    where = _key_table(args)
    try:
        rows = list_keys(args.user)
    except key_store.TABLE_ERRORS as err:
        sys.exit(f"dynavera: cannot read {where}: {err}")
    for row in sorted(rows, key=lambda r: (r.user_id, r.created_at)):
        print(f"{row.key_id}  {row.prefix or '?':<10} {row.user_id}  {row.name or '-'}  "
              f"created {row.created_at}  last used {row.last_used_at or 'never'}")
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    from chalicelib.errors import DynaveraError
    from chalicelib.keys import find, revoke, rotate
    from cli import key_store

    where = _key_table(args)
    try:
        row = find(args.key_id)
        if args.keys_command == "rotate":
            key, new_row = rotate(row)
            successor = f"its successor {new_row.key_id} (shown once)"
            print(f"Key {row.key_id} of {row.user_id} revoked; {successor}:", file=sys.stderr)
            print(key)
            return 0
        closed = revoke(row)
    except DynaveraError as err:
        sys.exit(f"dynavera: {err.message} (in {where})")
    except key_store.TABLE_ERRORS as err:
        sys.exit(f"dynavera: cannot change {where}: {err}")
    print(f"Key {row.key_id} of {row.user_id} revoked; {closed} open WebSocket connection(s) closed.")
    return 0


def use(args: argparse.Namespace) -> int:
    if args.stage == "local":
        stages.choose(None)
        print(f"./dynavera now talks to the local stack ({stages.LOCAL_API_URL}).")
        return 0
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.Session(region_name=args.region)
    if session.region_name is None:
        sys.exit("dynavera: no AWS region; pass --region or set AWS_REGION.")
    try:
        stage = stages.learn(session.client("cloudformation"), args.stage, session.region_name)
    except LookupError as err:
        sys.exit(f"dynavera: {err}")
    except (BotoCoreError, ClientError) as err:
        sys.exit(f"dynavera: cannot read the stage's stacks ({err}); check your AWS credentials.")
    stages.choose(stage)
    print(f"./dynavera now talks to stage {stage.name} ({stage.region}):")
    print(f"  REST API   {stage.api_url}\n  WebSocket  {stage.ws_url}")
    if stage.console_url:
        print(f"  Console    {stage.console_url}")
    return 0


@contextmanager
def _session(args: argparse.Namespace) -> Iterator[Api]:
    """The API with the caller's key; an error answer ends the command with its code and message."""
    api = Api(api_url(), api_key(args))
    try:
        yield api
    except ApiError as err:
        sys.exit(f"dynavera: {err}")
    finally:
        api.close()


def _api(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    with _session(args) as api:
        return api.call(method, path, body)


def agents_list(args: argparse.Namespace) -> int:
    with _session(args) as api:
        for agent in api.pages("/agents", "agents"):
            print(f"{agent['agent_id']}  {agent['name']}  ({agent['config'].get('collection')})")
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

    names = ("top_k", "max_tokens", "temperature")
    overrides = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    return ask_over_websocket(ws_url(), api_key(args), args.agent_id, args.question, overrides, as_json=args.json)


def executions_list(args: argparse.Namespace) -> int:
    from cli import executions

    with _session(args) as api:
        for execution in api.pages(f"/agents/{quote(args.agent_id, safe='')}/executions", "executions"):
            print(executions.line(execution))
    return 0


def executions_show(args: argparse.Namespace) -> int:
    from cli import executions

    print(executions.details(_api(args, "GET", f"/executions/{quote(args.execution_id, safe='')}")))
    return 0


def executions_follow(args: argparse.Namespace) -> int:
    from cli.ask import follow_over_websocket

    return follow_over_websocket(ws_url(), api_key(args), args.execution_id, as_json=args.json)


def executions_stop(args: argparse.Namespace) -> int:
    execution = _api(args, "POST", f"/executions/{quote(args.execution_id, safe='')}/stop")
    print(f"{execution['execution_id']}  {execution['status']}  (stop requested)")
    return 0


def _collection(args: argparse.Namespace, name_or_id: str) -> dict[str, Any]:
    """A collection by its name (what users type) or its id."""
    with _session(args) as api:
        for collection in api.pages("/collections", "collections"):
            if name_or_id in (collection["name"], collection["collection_id"]):
                return collection
    sys.exit(f"dynavera: no collection named {name_or_id!r}; see './dynavera collections list'.")


def collections_list(args: argparse.Namespace) -> int:
    with _session(args) as api:
        for c in api.pages("/collections", "collections"):
            counts = f"{c['document_count']} documents, {c['chunk_count']} chunks"
            print(f"{c['collection_id']}  {c['name']}  {c['status']}  {counts}")
    return 0


def collections_create(args: argparse.Namespace) -> int:
    collection = _api(args, "POST", "/collections", {"name": args.name, "description": args.description or ""})
    print(collection["collection_id"])
    return 0


def collections_show(args: argparse.Namespace) -> int:
    collection = _collection(args, args.collection)
    print(f"{collection['name']}  ({collection['collection_id']}, {collection['status']})")
    if collection.get("description"):
        print(f"  {collection['description']}")
    print(f"  {collection['document_count']} documents, {collection['chunk_count']} chunks")
    with _session(args) as api:
        for d in api.pages(f"/collections/{collection['collection_id']}/documents", "documents"):
            error = f"  {d['error']['code']}: {d['error']['message']}" if d.get("error") else ""
            chunks = f"{d['chunks_done']}/{d['chunks_total']} chunks"
            print(f"  {d['document_id']}  {d['filename']}  {d['status']}  {chunks}{error}")
    return 0


def collections_delete(args: argparse.Namespace) -> int:
    collection = _collection(args, args.collection)
    deleted = _api(args, "DELETE", f"/collections/{collection['collection_id']}")
    print(f"{deleted['name']}: {deleted['status']} (its documents and chunks go)")
    return 0


def upload(args: argparse.Namespace) -> int:
    from cli import upload as client
    from cli.progress import ProgressLines

    key = api_key(args)
    try:
        if not client.collect(args.paths):
            sys.exit(f"dynavera: no .md, .txt or .pdf files in {', '.join(args.paths)}")
        client.ensure_collection(api_url(), key, args.collection)
        uploads = client.upload_paths(api_url(), key, args.collection, args.paths, progress=ProgressLines(sys.stdout))
    except client.UploadError as err:
        sys.exit(f"dynavera: {err}")
    failed = [u for u in uploads if u.error]
    done = len(uploads) - len(failed)
    outcome = f"; {len(failed)} failed" if failed else "."
    print(f"{done} of {len(uploads)} files indexed in {args.collection}{outcome}")
    return 1 if failed else 0


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
    create = keys.add_parser(
        "create",
        help="create an API key for USER; prints it as the last line",
        description="Writes to a deployed stage's table with your own AWS credentials (--stage), or to the "
        "local stack (--local, or the AWS_ENDPOINT_URL that 'make run' gives its processes).",
    )
    create.add_argument("user")
    create.add_argument("--name", default="", help="what the key is for, shown in its owner's key list")
    create.set_defaults(func=keys_create)
    listed = keys.add_parser("list", help="list the stage's keys (never a secret), or one user's")
    listed.add_argument("--user")
    listed.set_defaults(func=keys_list)
    revoked = keys.add_parser("revoke", help="revoke a key: refused within seconds, its sockets closed")
    rotated = keys.add_parser("rotate", help="a new key for the same user and name (printed last), the old revoked")
    for command in (revoked, rotated):
        command.add_argument("key_id")
        command.set_defaults(func=keys_revoke)
    for command in (create, listed, revoked, rotated):
        command.add_argument(
            "--stage", help="the deployed stage (default: the one chosen with 'use', then $DYNAVERA_STAGE)"
        )
        command.add_argument(
            "--local", action="store_true", help="the local stack: LocalStack's endpoint settings (LOCALSTACK_HOST)"
        )
        command.add_argument(
            "--region", help="the stage's region (default: the one chosen with 'use', then AWS_REGION)"
        )

    chosen = commands.add_parser("use", help="talk to a deployed stage (its URLs read from its stacks), or 'local'")
    chosen.add_argument("stage")
    chosen.add_argument("--region", help="default: AWS_REGION, then your AWS profile's region")
    chosen.set_defaults(func=use)

    # Listed for --help only: main() hands their arguments to the deploy module as they are.
    for name, text in ROLLOUT_COMMANDS.items():
        commands.add_parser(name, help=f"{text} (see ./dynavera {name} --help)")

    agents = commands.add_parser("agents", help="agents").add_subparsers(dest="agents_command", required=True)
    agents.add_parser("list", help="list your agents").set_defaults(func=agents_list)
    new = agents.add_parser("create", help="create an agent; prints its id")
    new.add_argument("name")
    new.add_argument("--description")
    new.add_argument("--collection", help="the name of your collection it answers from (default: none, no retrieval)")
    new.set_defaults(func=agents_create)

    question = commands.add_parser("ask", help="ask an agent; streams the answer over the WebSocket")
    question.add_argument("agent_id")
    question.add_argument("question")
    question.add_argument("--json", action="store_true", help="print the raw frames")
    for flag, kind in (("--top-k", int), ("--max-tokens", int), ("--temperature", float)):
        question.add_argument(flag, type=kind, help="this run only, instead of the agent's (checked by the API)")
    question.set_defaults(func=ask)

    runs = commands.add_parser("executions", help="runs of your agents").add_subparsers(
        dest="executions_command", required=True
    )
    listed = runs.add_parser("list", help="an agent's runs, newest first: status and duration")
    listed.add_argument("agent_id")
    listed.set_defaults(func=executions_list)
    for name, text, func in (
        ("show", "one run: status, answer, sources, timings", executions_show),
        ("stop", "stop a run", executions_stop),
    ):
        one = runs.add_parser(name, help=text)
        one.add_argument("execution_id")
        one.set_defaults(func=func)
    followed = runs.add_parser("follow", help="a run from its start, its answer as it grows, live to its end")
    followed.add_argument("execution_id")
    followed.add_argument("--json", action="store_true", help="print the raw frames")
    followed.set_defaults(func=executions_follow)

    collections = commands.add_parser("collections", help="your document collections").add_subparsers(
        dest="collections_command", required=True
    )
    collections.add_parser("list", help="list your collections").set_defaults(func=collections_list)
    made = collections.add_parser("create", help="create a collection; prints its id")
    made.add_argument("name", help="3-63 letters, digits, '.', '_' or '-'")
    made.add_argument("--description")
    made.set_defaults(func=collections_create)
    shown = collections.add_parser("show", help="a collection and its documents, with their status")
    shown.add_argument("collection", help="its name or id")
    shown.set_defaults(func=collections_show)
    gone = collections.add_parser("delete", help="delete a collection, its documents and chunks")
    gone.add_argument("collection", help="its name or id")
    gone.set_defaults(func=collections_delete)

    docs = commands.add_parser(
        "upload",
        help="upload files or folders (.md, .txt, .pdf) into a collection and watch them indexed",
        description="The collection is created when you have none of that name. Files whose bytes the "
        "collection holds already are not sent again; a file that fails is named with its code and the "
        "others go on (exit status 1 when any failed).",
    )
    docs.add_argument("paths", nargs="+", metavar="PATH")
    docs.add_argument("--collection", required=True, help="the collection's name")
    docs.set_defaults(func=upload)

    commands.add_parser("bench", help="run the benchmarks and print their ratios").set_defaults(func=bench)
    return root


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ROLLOUT_COMMANDS:
        # The rollout is a program of its own (`python -m deploy`, which records the stage it
        # deployed through cli.stages): handed over, not imported, so the two never import each other.
        command = [sys.executable, "-m", "deploy", "up" if argv[0] == "deploy" else "down", *argv[1:]]
        os.execv(sys.executable, command)
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
