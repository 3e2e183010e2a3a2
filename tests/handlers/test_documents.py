"""Documents and collections in-process: the sweeper that fails uploads never made and indexing
that stopped, and the executor that hands the runtime the agent's collection id, never a name."""

from __future__ import annotations

from typing import Any

import contract
from chalicelib.models import Document
from local.poller import scheduled_event
from tests.handlers.conftest import Handlers
from tests.handlers.test_executor import ANSWER

LONG_AGO = "2026-01-01T00:00:00.000000Z"


def collection(h: Handlers, key: str, name: str) -> dict[str, Any]:
    response = h.rest("POST", "/collections", key, {"name": name})
    assert response.status_code == 201, response.body
    return response.json_body


def document(h: Handlers, key: str, collection_id: str) -> Document:
    response = h.rest("POST", f"/collections/{collection_id}/documents", key, {"filename": "a.md", "size": 3})
    assert response.status_code == 201, response.body
    return Document.get(collection_id, response.json_body["document"]["document_id"], consistent_read=True)


def left_at(row: Document, status: str, updated_at: str = LONG_AGO) -> Document:
    """The document as an indexer (or a client that never uploaded) left it, long ago."""
    row.update(actions=[Document.status.set(status), Document.updated_at.set(updated_at)])
    return row


def reread(row: Document) -> Document:
    return Document.get(row.collection_id, row.document_id, consistent_read=True)


def sweep(h: Handlers) -> int:
    return h.invoke("sweep_stuck_documents", scheduled_event())["swept"]


def test_the_sweeper_fails_uploads_never_made_and_indexing_that_stopped(h: Handlers) -> None:
    h.rewire(indexing_deadline_seconds=60)
    _, key = h.user()
    cid = collection(h, key, "sweepable")["collection_id"]
    never_uploaded = left_at(document(h, key, cid), "awaiting_upload")
    lost = {status: left_at(document(h, key, cid), status) for status in ("queued", "extracting", "embedding")}
    fresh = document(h, key, cid)  # asked for just now: its client may still be uploading
    moving = left_at(document(h, key, cid), "embedding", updated_at=fresh.updated_at)
    done = left_at(document(h, key, cid), "indexed")

    assert sweep(h) >= 4
    failed = reread(never_uploaded)
    assert (failed.status, failed.error_code) == ("failed", "upload_expired")
    assert failed.error_message == contract.DOCUMENT_FAILURES["upload_expired"]
    for status, row in lost.items():
        row = reread(row)
        assert (row.status, row.error_code) == ("failed", "indexing_stalled")
        assert status in row.error_message and "60 s" in row.error_message
    assert reread(fresh).status == "awaiting_upload"
    assert reread(moving).status == "embedding"
    assert reread(done).status == "indexed"
    answer = h.rest("GET", f"/collections/{cid}/documents/{never_uploaded.document_id}", key).json_body
    assert answer["error"] == {"code": "upload_expired", "message": contract.DOCUMENT_FAILURES["upload_expired"]}


def test_a_document_that_moved_after_the_sweeper_read_it_is_left_alone(h: Handlers) -> None:
    from chalicelib.documents import _fail_stuck

    _, key = h.user()
    cid = collection(h, key, "raced")["collection_id"]
    row = left_at(document(h, key, cid), "embedding")
    # The indexer reported progress between the sweeper's index read and its write.
    left_at(row, "embedding", updated_at="2026-06-01T00:00:00.000000Z")
    assert not _fail_stuck(cid, row.document_id, "embedding", "2026-03-01T00:00:00.000000Z", 60)
    assert reread(row).status == "embedding"


def test_the_runtime_gets_the_agents_collection_id(h: Handlers) -> None:
    _, key = h.user()
    papers = collection(h, key, "papers")
    agent_id = h.agent(key, collection="papers")
    h.runtime.play(*ANSWER)
    h.start(key, agent_id)
    assert h.deliver() == 1
    config = h.runtime.requests[0]["body"]["config"]
    assert config["collection_id"] == papers["collection_id"] and config["collection"] == "papers"


def test_an_agent_without_a_collection_runs_without_retrieval(h: Handlers) -> None:
    _, key = h.user()
    agent_id = h.agent(key)
    h.runtime.play(*ANSWER)
    execution_id = h.start(key, agent_id)
    h.deliver()
    assert h.runtime.requests[0]["body"]["config"]["collection_id"] is None
    assert h.execution(execution_id).status == "completed"


def test_a_run_whose_collection_was_deleted_meanwhile_fails_naming_only_it(h: Handlers) -> None:
    _, key = h.user()
    _, other_key = h.user()
    collection(h, other_key, "papers")  # another user's collection of the same name
    mine = collection(h, key, "papers")
    agent_id = h.agent(key, collection="papers")
    execution_id = h.start(key, agent_id)
    # While the run waits, the agent lets go of the collection and the collection goes: the run
    # keeps the settings it started with, and finds no collection of that name.
    assert h.rest("PATCH", f"/agents/{agent_id}", key, {"config": {"collection": None}}).status_code == 200
    assert h.rest("DELETE", f"/collections/{mine['collection_id']}", key).status_code == 202
    h.runtime.play(*ANSWER)
    h.deliver()
    execution = h.execution(execution_id)
    assert execution.status == "failed"
    assert "'papers' no longer exists" in execution.error_message
    assert h.runtime.requests == []
