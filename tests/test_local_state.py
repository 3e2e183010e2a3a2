"""The local stack's state across restarts: the embedded moto endpoint's snapshot, `make reset`,
and the documents bucket's uploads/ notification to the ingest queue applied on the endpoint."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from chalicelib.settings import Settings
from chalicelib.wiring import wire
from local import endpoint
from local.moto_server import SNAPSHOT_EVERY
from local.stack import free_port
from local.state import LocalState

ROOT = Path(__file__).resolve().parent.parent
FILE = b"%PDF-1.4 " + bytes(range(256)) * 400  # binary: every byte value survives the snapshot


@pytest.fixture
def state(tmp_path: Path) -> LocalState:
    return LocalState(tmp_path / "build")


@pytest.fixture
def server(state: LocalState) -> Iterator[endpoint.MotoServer]:
    """An endpoint of its own (this test restarts it) keeping its data in a temporary build dir."""
    moto = endpoint.MotoServer(f"http://127.0.0.1:{free_port()}", state.aws_snapshot, state.build / "aws.log")
    moto.start()
    yield moto
    moto.stop()


def reset(state: LocalState) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local.state", "reset", "--build", str(state.build)],
        cwd=ROOT, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def write_everything(url: str, stage: str) -> dict[str, Any]:
    """A key, an agent row, an uploaded file and a queued message: one of each kind of state."""
    from chalicelib.keys import create_api_key

    endpoint.provision(stage, url)
    wire(Settings.from_env(endpoint.aws_environment(url, stage)))
    key, _ = create_api_key("alice")
    dynamodb = endpoint.client("dynamodb", url)
    agent = {"agent_id": {"S": str(uuid.uuid4())}, "user_id": {"S": "alice"}, "created_at": {"S": "2026-01-01"}}
    dynamodb.put_item(TableName=f"dynavera-{stage}-agents", Item=agent)
    s3 = endpoint.client("s3", url)
    s3.create_bucket(Bucket=f"dynavera-{stage}-files")
    s3.put_object(Bucket=f"dynavera-{stage}-files", Key="uploads/alice/c/d", Body=FILE)
    sqs = endpoint.client("sqs", url)
    queue_url = sqs.create_queue(QueueName=f"dynavera-{stage}-work")["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="still here")
    return {"key": key, "agent": agent}


def assert_everything_kept(url: str, stage: str, written: dict[str, Any]) -> None:
    from chalicelib.auth import user_for_key

    wire(Settings.from_env(endpoint.aws_environment(url, stage)))
    assert user_for_key(written["key"]) == "alice"
    items = endpoint.client("dynamodb", url).scan(TableName=f"dynavera-{stage}-agents")["Items"]
    assert items == [written["agent"]]
    body = endpoint.client("s3", url).get_object(Bucket=f"dynavera-{stage}-files", Key="uploads/alice/c/d")["Body"]
    assert body.read() == FILE
    sqs = endpoint.client("sqs", url)
    queue_url = sqs.get_queue_url(QueueName=f"dynavera-{stage}-work")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in messages] == ["still here"]


def test_a_restarted_endpoint_keeps_keys_rows_files_messages_and_its_stacks(server: endpoint.MotoServer) -> None:
    written = write_everything(server.url, "keep")
    server.stop()
    server.start()
    assert_everything_kept(server.url, "keep", written)
    # The stack is there already: provisioning again creates nothing and fails on nothing.
    assert endpoint.provision("keep", server.url)["AgentsTableName"] == "dynavera-keep-agents"


def test_a_killed_endpoint_loses_at_most_the_last_seconds(server: endpoint.MotoServer, state: LocalState) -> None:
    written = write_everything(server.url, "crash")
    deadline = time.monotonic() + 10 * SNAPSHOT_EVERY
    while not state.aws_snapshot.exists() or b"still here" not in state.aws_snapshot.read_bytes():
        assert time.monotonic() < deadline, "no snapshot with the last write within its interval"
        time.sleep(0.2)
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGKILL)  # no chance of a last snapshot
    server.process.wait()
    server.start()
    assert_everything_kept(server.url, "crash", written)


def test_reads_are_not_saved_again_but_a_write_is(server: endpoint.MotoServer, state: LocalState) -> None:
    """The poller reads the queue every second: an idle stack must not re-save its whole state."""
    write_everything(server.url, "idle")
    deadline = time.monotonic() + 10 * SNAPSHOT_EVERY
    while not state.aws_snapshot.exists() or b"still here" not in state.aws_snapshot.read_bytes():
        assert time.monotonic() < deadline, "no snapshot with the last write within its interval"
        time.sleep(0.2)
    time.sleep(2 * SNAPSHOT_EVERY)  # let a save already under way finish
    saved = state.aws_snapshot.stat().st_mtime_ns
    sqs, dynamodb = endpoint.client("sqs", server.url), endpoint.client("dynamodb", server.url)
    reads_until = time.monotonic() + 3 * SNAPSHOT_EVERY
    while time.monotonic() < reads_until:
        sqs.receive_message(QueueUrl=sqs.get_queue_url(QueueName="dynavera-idle-work")["QueueUrl"], WaitTimeSeconds=0)
        dynamodb.list_tables()
        dynamodb.scan(TableName="dynavera-idle-agents")
    assert state.aws_snapshot.stat().st_mtime_ns == saved
    dynamodb.put_item(TableName="dynavera-idle-agents", Item={"agent_id": {"S": "later"}})
    deadline = time.monotonic() + 10 * SNAPSHOT_EVERY
    while state.aws_snapshot.stat().st_mtime_ns == saved:
        assert time.monotonic() < deadline, "the write was never saved"
        time.sleep(0.2)


def test_reset_refuses_while_the_endpoint_runs_then_starts_clean(
    server: endpoint.MotoServer, state: LocalState
) -> None:
    write_everything(server.url, "gone")
    state.demo_key.write_text("dv_old\n")
    (state.chroma / "index").mkdir(parents=True)
    refused = reset(state)
    assert refused.returncode == 1 and "stop 'make run' first" in refused.stderr
    assert state.chroma.exists() and state.demo_key.exists()

    server.stop()
    done = reset(state)
    assert done.returncode == 0, done.stderr
    assert not state.aws.exists() and not state.chroma.exists() and not state.demo_key.exists()
    server.start()
    tables = endpoint.client("dynamodb", server.url).list_tables()["TableNames"]
    assert not [t for t in tables if t.startswith("dynavera-gone-")]


def test_reset_with_nothing_to_reset_says_so(state: LocalState) -> None:
    done = reset(state)
    assert done.returncode == 0 and "nothing to remove" in done.stdout


@pytest.mark.parametrize(
    "snapshot",
    [pickle.dumps({"moto": "0.0.1", "backends": []}), b"\x80\x05truncated", pickle.dumps(["not", "a", "snapshot"])],
    ids=["other-moto-version", "truncated", "not-a-snapshot"],
)
def test_an_unusable_snapshot_stops_the_start_and_says_make_reset(state: LocalState, snapshot: bytes) -> None:
    state.aws.mkdir(parents=True)
    state.aws_snapshot.write_bytes(snapshot)
    moto = endpoint.MotoServer(f"http://127.0.0.1:{free_port()}", state.aws_snapshot, state.build / "aws.log")
    with pytest.raises(RuntimeError, match="make reset"):
        moto.start()
    assert state.aws_snapshot.read_bytes() == snapshot  # never overwritten by an empty one


def test_two_endpoints_never_share_one_state(server: endpoint.MotoServer, state: LocalState) -> None:
    second = endpoint.MotoServer(f"http://127.0.0.1:{free_port()}", state.aws_snapshot, state.build / "second.log")
    with pytest.raises(RuntimeError, match="already keeps its state"):
        second.start()


def test_uploads_notify_the_ingest_queue_after_a_test_event_with_keys_url_encoded(aws_endpoint: str) -> None:
    stage = f"notify{uuid.uuid4().hex[:6]}"
    bucket, queue = f"dynavera-{stage}-documents", f"dynavera-{stage}-ingest"
    s3, sqs = endpoint.client("s3", aws_endpoint), endpoint.client("sqs", aws_endpoint)
    s3.create_bucket(Bucket=bucket)
    queue_url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    endpoint.notify_uploads(aws_endpoint, bucket, queue)
    endpoint.notify_uploads(aws_endpoint, bucket, queue)  # applied again at every start: idempotent

    key = "uploads/alice smith/c-1/d+1"
    s3.put_object(Bucket=bucket, Key=key, Body=b"hello")
    s3.put_object(Bucket=bucket, Key="chunks/c-1/d+1.jsonl.gz", Body=b"not an upload")
    bodies: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while not any("Records" in body for body in bodies):
        assert time.monotonic() < deadline, f"no ObjectCreated for {key}: {bodies}"
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        bodies += [json.loads(m["Body"]) for m in received.get("Messages", [])]
    assert bodies[0]["Event"] == "s3:TestEvent"
    records = [record for body in bodies for record in body.get("Records", [])]
    assert [unquote_plus(r["s3"]["object"]["key"]) for r in records] == [key]
    assert records[0]["s3"]["object"]["key"] != key  # URL-encoded, as S3 sends it
    assert records[0]["eventName"].startswith("ObjectCreated:")
