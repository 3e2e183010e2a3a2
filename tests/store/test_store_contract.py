"""The store's contract, held by both of its backends: the embedded PersistentClient and a real
Chroma server (`chroma run`). Vectors are axis-aligned, so which chunk is nearest is known."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from local.chroma import ChromaServer
from local.stack import free_port
from mcp_container.config import Settings
from mcp_container.store import Store, StoreUnreachable

DIMENSIONS = 384


def axis(n: int) -> list[float]:
    vector = [0.0] * DIMENSIONS
    vector[n] = 1.0
    return vector


@pytest.fixture(params=["embedded", "server"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """Opens a new client on one store each time it is called, as another process would."""
    if request.param == "server":
        server: ChromaServer = request.getfixturevalue("chroma_server")
        return lambda: Store.open(Settings(chroma_url=server.url))
    return lambda: Store.open(Settings(rag_db=tmp_path / "rag_db"))


@pytest.fixture
def collection_id() -> str:
    return str(uuid.uuid4())


def test_a_chunk_is_found_right_after_it_is_written(open_store: Callable[[], Store], collection_id: str) -> None:
    store = open_store()
    store.upsert(collection_id, "doc-a", "a.md", [(0, "alpha"), (1, "beta")], [axis(0), axis(1)])
    found = store.search(collection_id, axis(1), 1)
    assert [(p.chunk_id, p.source, p.text) for p in found] == [("doc-a:1", "a.md", "beta")]
    assert found[0].score == pytest.approx(1.0)


def test_a_second_client_sees_a_new_chunk_at_once(open_store: Callable[[], Store], collection_id: str) -> None:
    writer, reader = open_store(), open_store()
    assert reader.search(collection_id, axis(0), 3) == []  # before the collection exists
    writer.upsert(collection_id, "doc-a", "a.md", [(0, "alpha")], [axis(0)])
    assert [p.chunk_id for p in reader.search(collection_id, axis(0), 3)] == ["doc-a:0"]
    writer.upsert(collection_id, "doc-b", "b.md", [(0, "gamma")], [axis(2)])
    assert reader.search(collection_id, axis(2), 1)[0].chunk_id == "doc-b:0"


def test_upsert_twice_changes_nothing(open_store: Callable[[], Store], collection_id: str) -> None:
    store = open_store()
    for _ in range(2):
        store.upsert(collection_id, "doc-a", "a.md", [(0, "alpha"), (1, "beta")], [axis(0), axis(1)])
    assert store.count(collection_id) == 2
    assert [p.chunk_id for p in store.search(collection_id, axis(0), 5)] == ["doc-a:0", "doc-a:1"]
    held = store.stored(collection_id, "doc-a", [0, 1, 2])
    assert sorted(held) == [0, 1] and held[1].text == "beta" and held[1].vector == pytest.approx(axis(1))


def test_a_document_over_chromas_batch_limit_is_written_whole(
    open_store: Callable[[], Store], collection_id: str
) -> None:
    """A reused or rebuilt document arrives in one call; Chroma refuses batches over 5,461."""
    store = open_store()
    count = 6000
    chunks = [(i, f"chunk {i}") for i in range(count)]
    store.upsert(collection_id, "doc-big", "big.txt", chunks, [axis(i % DIMENSIONS) for i in range(count)])
    assert store.count(collection_id, "doc-big") == count
    held = store.stored(collection_id, "doc-big", [0, count - 1])
    assert (held[0].text, held[count - 1].text) == ("chunk 0", f"chunk {count - 1}")


def test_delete_by_document_removes_it_from_queries(open_store: Callable[[], Store], collection_id: str) -> None:
    writer, reader = open_store(), open_store()
    writer.upsert(collection_id, "doc-a", "a.md", [(0, "alpha")], [axis(0)])
    writer.upsert(collection_id, "doc-b", "b.md", [(0, "beta")], [axis(1)])
    assert len(reader.search(collection_id, axis(0), 5)) == 2
    writer.delete_document(collection_id, "doc-a")
    assert [p.chunk_id for p in reader.search(collection_id, axis(0), 5)] == ["doc-b:0"]
    assert writer.count(collection_id, "doc-a") == 0 and writer.count(collection_id, "doc-b") == 1


def test_collections_never_see_each_other(open_store: Callable[[], Store], collection_id: str) -> None:
    store = open_store()
    other = str(uuid.uuid4())
    store.upsert(collection_id, "doc-a", "a.md", [(0, "alpha")], [axis(0)])
    store.upsert(other, "doc-b", "b.md", [(0, "beta")], [axis(0)])
    assert [p.chunk_id for p in store.search(collection_id, axis(0), 5)] == ["doc-a:0"]


def test_a_dropped_and_refilled_collection_is_read_by_a_client_that_knew_the_old_one(
    open_store: Callable[[], Store], collection_id: str
) -> None:
    writer, reader = open_store(), open_store()
    writer.upsert(collection_id, "doc-a", "a.md", [(0, "alpha")], [axis(0)])
    assert reader.search(collection_id, axis(0), 1)
    writer.drop_collection(collection_id)
    assert reader.search(collection_id, axis(0), 1) == []
    writer.upsert(collection_id, "doc-b", "b.md", [(0, "beta")], [axis(1)])
    assert [p.chunk_id for p in reader.search(collection_id, axis(1), 1)] == ["doc-b:0"]
    writer.drop_collection(collection_id)
    writer.drop_collection(collection_id)  # a redelivered delete


def test_a_server_that_does_not_answer_is_unreachable_not_an_error() -> None:
    store = Store.open(Settings(chroma_url=f"http://127.0.0.1:{free_port()}"))
    assert store.health() is False
    with pytest.raises(StoreUnreachable):
        store.search(str(uuid.uuid4()), axis(0), 3)


def test_a_server_that_stops_and_comes_back_is_reached_again(tmp_path: Path, collection_id: str) -> None:
    from local.chroma import start_chroma

    server = start_chroma(tmp_path / "data")
    port = int(server.url.rsplit(":", 1)[1])
    store = Store.open(Settings(chroma_url=server.url))
    store.upsert(collection_id, "doc-a", "a.md", [(0, "alpha")], [axis(0)])
    server.stop()
    assert store.health() is False
    with pytest.raises(StoreUnreachable):
        store.search(collection_id, axis(0), 1)
    server = start_chroma(tmp_path / "data", port)
    try:
        assert store.health() is True
        assert [p.chunk_id for p in store.search(collection_id, axis(0), 1)] == ["doc-a:0"]
    finally:
        server.stop()
