"""`python -m mcp_container.indexer` as a process, fed by S3's own notifications: the moto
server's bucket notifies the ingest queue (an s3:TestEvent first, keys URL-encoded)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import contract
from local import endpoint
from local.chroma import ChromaServer
from local.stack import stop_process
from mcp_container.indexer import Aws
from mcp_container.store import Store
from tests.store.conftest import EMBEDDER, Library, create_tables, stage_settings

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "mcp_container" / "corpus"
WITHIN_SECONDS = 120.0
STAGE = f"proc{uuid.uuid4().hex[:6]}"


def wait_for(condition: Callable[[], Any], what: str, process: subprocess.Popen[bytes], log: Path) -> Any:
    deadline = time.monotonic() + WITHIN_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the indexer exited with {process.returncode}:\n{log.read_text()}")
        if value := condition():
            return value
        time.sleep(0.2)  # a poll interval; the deadline bounds the wait
    raise TimeoutError(f"{what} not within {WITHIN_SECONDS} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def notified(aws_endpoint: str, chroma_server: ChromaServer, aws: Aws) -> Aws:
    """A stage of its own whose bucket tells its ingest queue about every upload, as in AWS."""
    settings = stage_settings(aws_endpoint, STAGE, chroma_server.url)
    create_tables(endpoint.client("dynamodb", aws_endpoint), settings)
    sqs, s3 = endpoint.client("sqs", aws_endpoint), endpoint.client("s3", aws_endpoint)
    queue_url = sqs.create_queue(QueueName=settings.ingest_queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket=settings.documents_bucket)
    s3.put_bucket_notification_configuration(
        Bucket=settings.documents_bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}},
                }
            ]
        },
    )
    return Aws(s3, sqs, aws.dynamodb, settings)


@pytest.fixture(scope="module")
def indexer_process(
    notified: Aws, aws_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    settings = notified.settings
    env = {
        **os.environ,
        **endpoint.aws_environment(aws_endpoint, STAGE),
        "DOCUMENTS_BUCKET": settings.require_bucket(),
        "DYNAVERA_CHROMA_URL": settings.chroma_url,
        "DYNAVERA_EMBEDDER": str(EMBEDDER),
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path_factory.mktemp("indexer") / "indexer.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "mcp_container.indexer"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    yield process, log
    stop_process(process, timeout=30)


def test_an_upload_is_indexed_and_a_delete_message_removes_it(
    notified: Aws, indexer_process: tuple[subprocess.Popen[bytes], Path]
) -> None:
    process, log = indexer_process
    library = Library(notified, f"user {uuid.uuid4().hex[:6]}+x", str(uuid.uuid4()))
    notified.collections.put_item(
        Item={
            "user_id": library.user_id,
            "collection_id": library.collection_id,
            "name": "papers",
            "status": "active",
            "document_count": 0,
            "chunk_count": 0,
        }
    )
    document_id = library.add("motion artefacts.md", (CORPUS / "05-motion-artefacts.md").read_bytes())
    row = wait_for(
        lambda: (r := library.row(document_id)) and r["status"] in ("indexed", "failed") and r,
        "indexed",
        process,
        log,
    )
    assert row["status"] == "indexed", row
    store = Store.open(notified.settings)
    assert store.count(library.collection_id, document_id) == row["chunks_total"] > 0

    queue_url = notified.sqs.get_queue_url(QueueName=notified.settings.ingest_queue)["QueueUrl"]
    notified.sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=json.dumps(
            {"action": contract.DELETE_DOCUMENT, "collection_id": library.collection_id, "document_id": document_id}
        ),
    )
    wait_for(lambda: library.row(document_id) is None, "the row deleted", process, log)
    assert store.count(library.collection_id, document_id) == 0
    assert library.collection()["document_count"] == 0


def test_the_indexer_stops_on_sigterm(indexer_process: tuple[subprocess.Popen[bytes], Path]) -> None:
    process, log = indexer_process
    process.terminate()
    # It finishes the long poll in hand (at most 20 s) and exits cleanly.
    assert process.wait(timeout=40) == 0, log.read_text()


def test_the_indexer_refuses_to_start_without_its_bucket(aws_endpoint: str) -> None:
    # The bucket's name carries the account id: nothing may guess it, so a missing one is said at once.
    env = {k: v for k, v in os.environ.items() if k != "DOCUMENTS_BUCKET"}
    env.update({**endpoint.aws_environment(aws_endpoint, STAGE), "PYTHONPATH": str(ROOT)})
    command = [sys.executable, "-m", "mcp_container.indexer"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "DOCUMENTS_BUCKET must name the documents bucket" in done.stderr
