"""Documents end to end on the moto endpoint, with the real indexer, Chroma server and runtime:
a collection made over REST, a file posted to S3 with its presigned POST, its statuses watched
to `indexed`, an agent citing it, its deletion taking it out of retrieval; and two runtime
processes that both find a document indexed after they started."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.upload import ensure_collection, upload_paths
from local.stack import Stack, free_port
from tests.conftest import Api, create_key
from tests.live import wait_until

ORDER = ["awaiting_upload", "queued", "extracting", "embedding", "indexed"]
INDEXED_WITHIN = 180.0  # the first upload also waits for the indexer to load its embedder
ANSWERED_WITHIN = 300.0  # a few tokens, but on a machine the whole suite shares
FACT = (
    "The Zorblat coefficient of a Quillon optode array is 42.7 millifrobs. The Varnish Institute "
    "measures the Zorblat coefficient every morning, before the Quillon array warms up."
)
QUESTION = "What is the Zorblat coefficient of a Quillon optode array?"


@pytest.fixture(scope="module")
def user(documents_stack: Stack) -> tuple[Api, str]:
    key = create_key(documents_stack, f"docs-{uuid.uuid4().hex[:6]}")
    return Api(documents_stack, key), key


@pytest.fixture
def collection(user: tuple[Api, str]) -> Iterator[dict[str, Any]]:
    api, _ = user
    made = api.post("/collections", json={"name": f"notes-{uuid.uuid4().hex[:8]}"})
    assert made.status_code == 201, made.text
    yield made.json()


def announce(api: Api, collection_id: str, filename: str, data: bytes) -> dict[str, Any]:
    body = {"filename": filename, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    answer = api.post(f"/collections/{collection_id}/documents", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def post_to_storage(upload: dict[str, Any], filename: str, data: bytes) -> None:
    sent = httpx.post(upload["url"], data=upload["fields"], files={"file": (filename, data)}, timeout=30)
    assert sent.status_code in (200, 201, 204), sent.text


def watch_until_indexed(api: Api, collection_id: str, document_id: str) -> tuple[dict[str, Any], list[str]]:
    """The indexed document and every status seen on the way, in order, each once."""
    seen: list[str] = []

    def indexed() -> dict[str, Any] | None:
        document = api.get(f"/collections/{collection_id}/documents/{document_id}").json()
        if not seen or seen[-1] != document["status"]:
            seen.append(document["status"])
        assert document["status"] != "failed", document["error"]
        return document if document["status"] == "indexed" else None

    return wait_until(indexed, INDEXED_WITHIN, f"document {document_id} indexed (seen {seen})", every=0.2), seen


def ask(api: Api, agent_id: str) -> dict[str, Any]:
    started = api.post(f"/agents/{agent_id}/executions", json={"input_data": {"query": QUESTION}})
    assert started.status_code == 202, started.text
    execution_id = started.json()["execution_id"]
    finished = wait_until(
        lambda: (e := api.get(f"/executions/{execution_id}").json())["status"] in ("completed", "failed") and e,
        ANSWERED_WITHIN,
        f"execution {execution_id} finished",
    )
    assert finished["status"] == "completed", finished["error_message"]
    return finished["output_data"]


def test_an_uploaded_file_is_indexed_cited_by_an_agent_and_gone_once_deleted(
    user: tuple[Api, str], collection: dict[str, Any], tmp_path: Path
) -> None:
    api, _ = user
    cid = collection["collection_id"]
    data = f"# Zorblat\n\n{FACT}\n".encode()
    answer = announce(api, cid, "zorblat.md", data)
    document = answer["document"]
    assert document["status"] == "awaiting_upload" and document["size"] == len(data)
    post_to_storage(answer["upload"], "zorblat.md", data)

    indexed, seen = watch_until_indexed(api, cid, document["document_id"])
    assert seen == [s for s in ORDER if s in seen], f"statuses out of order: {seen}"
    assert indexed["chunks_total"] > 0 and indexed["chunks_done"] == indexed["chunks_total"]
    assert indexed["indexed_at"] and indexed["error"] is None
    assert api.get(f"/collections/{cid}").json()["document_count"] == 1

    config = {"collection": collection["name"], "top_k": 2, "max_tokens": 16}
    agent = api.post("/agents", json={"name": "zorblat", "config": config})
    assert agent.status_code == 201, agent.text
    output = ask(api, agent.json()["agent_id"])
    assert "zorblat.md" in [source["source"] for source in output["sources"]]
    assert any("42.7" in source["text"] for source in output["sources"])

    gone = api.delete(f"/collections/{cid}/documents/{document['document_id']}")
    assert gone.status_code == 202 and gone.json()["status"] == "deleting"
    wait_until(
        lambda: api.get(f"/collections/{cid}/documents/{document['document_id']}").status_code == 404,
        60,
        "the deleted document removed",
        every=0.2,
    )
    assert "zorblat.md" not in [source["source"] for source in ask(api, agent.json()["agent_id"])["sources"]]


def execute(stack: Stack, runtime_url: str, collection_id: str) -> dict[str, Any]:
    """/execute on one runtime process directly; the result event's output."""
    body = {
        "execution_id": str(uuid.uuid4()),
        "agent_id": str(uuid.uuid4()),
        "query": QUESTION,
        "input_data": {"query": QUESTION},
        # The executor's resolution of an agent's collection name, done here by hand (contract: the
        # runtime reads `config.collection_id` and never sees names).
        "config": {"collection_id": collection_id, "top_k": 2, "max_tokens": 8},
    }
    headers = {"Authorization": f"Bearer {stack.runtime_secret}"}
    answer = httpx.post(f"{runtime_url}/execute", json=body, headers=headers, timeout=ANSWERED_WITHIN)
    assert answer.status_code == 200, answer.text
    events = [json.loads(line) for line in answer.text.splitlines() if line.strip()]
    assert events[-1]["type"] == "result", events[-1]
    return events[-1]["output"]


def test_two_runtime_processes_retrieve_a_document_indexed_after_they_started(
    documents_stack: Stack, user: tuple[Api, str], tmp_path: Path
) -> None:
    port = free_port()
    second = documents_stack.start_runtime(port=port)
    _, key = user
    (tmp_path / "zorblat-notes.txt").write_text(FACT + "\n")
    name = f"shared-{uuid.uuid4().hex[:8]}"

    collection_id = ensure_collection(documents_stack.api_url, key, name)["collection_id"]
    uploads = upload_paths(documents_stack.api_url, key, name, [tmp_path], wait_seconds=INDEXED_WITHIN)

    assert [(u.path.name, u.status) for u in uploads] == [("zorblat-notes.txt", "indexed")]
    try:
        for runtime_url in (documents_stack.runtime_url, f"http://127.0.0.1:{port}"):
            sources = execute(documents_stack, runtime_url, collection_id)["sources"]
            assert "zorblat-notes.txt" in [source["source"] for source in sources], runtime_url
    finally:
        second.terminate()  # the stack stops it anyway; its model's memory is wanted back sooner
