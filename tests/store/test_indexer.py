"""The indexer against the moto server (S3, DynamoDB over HTTP) and the Chroma server, with the
real embedder counting what it embeds: statuses, counts, redelivery, deletes, bad files."""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path

import pytest

import contract
from mcp_container import indexer as indexer_module
from mcp_container.extract import ExtractFailed, extract
from mcp_container.indexer import Indexer, Upload
from mcp_container.store import Store, StoreUnreachable
from tests.store.conftest import CountingEmbedder, Library
from tests.store.pdfs import blank_pdf, encrypted_pdf, text_pdf

CORPUS = Path(__file__).resolve().parents[2] / "mcp_container" / "corpus"
MOTION = (CORPUS / "05-motion-artefacts.md").read_bytes()


def paragraphs(count: int, topic: str = "haemodynamics") -> bytes:
    """Text making about `count` chunks: paragraphs of ~500 characters each."""
    sentence = f"Paragraph {{n}} on {topic} measures oxygenated haemoglobin in the cortex with light. "
    return "\n\n".join((sentence.format(n=n) * 6).strip() for n in range(count)).encode()


def query(store: Store, embedder: CountingEmbedder, library: Library, text: str, top_k: int = 5) -> list[str]:
    vector = embedder.inner.embed([text])[0]
    return [p.chunk_id for p in store.search(library.collection_id, vector, top_k)]


def test_an_upload_is_indexed_searchable_counted_and_kept_in_s3(
    indexer: Indexer, library: Library, store: Store, embedder: CountingEmbedder
) -> None:
    document_id = library.add("motion.md", MOTION)
    indexer.handle(library.notification(document_id))
    row = library.row(document_id)
    assert row is not None and row["status"] == "indexed"
    total = int(row["chunks_total"])
    assert total > 1 and row["chunks_done"] == total and len(embedder.embedded) == total
    assert row["sha256"] and row["indexed_at"] >= row["created_at"] and "claim" not in row
    assert "error_code" not in row
    collection = library.collection()
    assert (collection["document_count"], collection["chunk_count"]) == (1, total)
    assert query(store, embedder, library, "How are motion artefacts corrected?")[0].startswith(f"{document_id}:")
    got = indexer.aws.s3.get_object(
        Bucket=indexer.aws.bucket, Key=contract.chunks_key(library.collection_id, document_id)
    )
    lines = [json.loads(line) for line in gzip.decompress(got["Body"].read()).decode().splitlines()]
    assert [line["index"] for line in lines] == list(range(total)) and len(lines[0]["vector"]) == 384


def test_a_redelivered_notification_embeds_nothing_twice(
    indexer: Indexer, library: Library, embedder: CountingEmbedder
) -> None:
    document_id = library.add("motion.md", MOTION)
    for _ in range(3):
        indexer.handle(library.notification(document_id))
    total = int(library.row(document_id)["chunks_total"])
    assert len(embedder.embedded) == total
    assert library.collection()["chunk_count"] == total  # counted once


def test_a_document_left_by_a_dead_indexer_is_finished_without_embedding_its_chunks_again(
    indexer: Indexer, library: Library, store: Store, embedder: CountingEmbedder
) -> None:
    document_id = library.add("long.txt", paragraphs(200))
    texts = indexer_module.chunk_text(paragraphs(200).decode())
    # The dead indexer's first two batches reached the store before it died.
    indexer_module.embed_chunks(store, embedder.inner, library.collection_id, document_id, "long.txt", texts[:128])
    indexer.aws.documents.update_item(
        Key={"collection_id": library.collection_id, "document_id": document_id},
        UpdateExpression="SET #s = :embedding, claim = :dead, updated_at = :long_ago",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":embedding": "embedding",
            ":dead": "dead",
            ":long_ago": "2020-01-01T00:00:00.000000Z",
        },
    )
    indexer.handle(library.notification(document_id))
    assert library.row(document_id)["status"] == "indexed"
    assert len(embedder.embedded) == len(texts) - 128
    assert store.count(library.collection_id, document_id) == len(texts)


class OverlapProbe:
    """The real store, whose first write waits until the embedder has been asked for the next
    batch: it completes only if a batch is written while the next one embeds."""

    def __init__(self, store: Store, embedder: CountingEmbedder, fail_on_write: int | None = None) -> None:
        self.store, self.embedder, self.fail_on_write = store, embedder, fail_on_write
        self.writes = 0
        self.next_batch_asked = threading.Event()

    def stored(self, *args: object) -> object:
        return self.store.stored(*args)  # type: ignore[arg-type]

    def embed(self, texts: list[str]) -> list[list[float]]:
        if self.embedder.embedded:  # a batch before this one has embedded
            self.next_batch_asked.set()
        return self.embedder.embed(texts)

    def upsert(self, *args: object) -> None:
        self.writes += 1
        if self.writes == self.fail_on_write:
            raise StoreUnreachable("the store went away")
        if self.writes == 1 and not self.next_batch_asked.wait(30):
            raise AssertionError("the next batch did not embed while the first was written")
        self.store.upsert(*args)  # type: ignore[arg-type]


def test_a_batch_is_written_while_the_next_one_embeds(
    library: Library, store: Store, embedder: CountingEmbedder
) -> None:
    texts = indexer_module.chunk_text(paragraphs(200).decode())
    probe = OverlapProbe(store, embedder)
    collection = library.collection_id
    chunks = indexer_module.embed_chunks(probe, probe, collection, "d-overlap", "long.txt", texts)  # type: ignore[arg-type]
    assert [c.index for c in chunks] == list(range(len(texts))) and len(embedder.embedded) == len(texts)
    assert store.count(library.collection_id, "d-overlap") == len(texts)


def test_a_failed_write_stops_the_embedding_one_batch_later_at_most(
    library: Library, store: Store, embedder: CountingEmbedder
) -> None:
    texts = indexer_module.chunk_text(paragraphs(400).decode())
    probe = OverlapProbe(store, embedder, fail_on_write=2)
    collection = library.collection_id
    with pytest.raises(StoreUnreachable):
        indexer_module.embed_chunks(probe, probe, collection, "d-failing", "long.txt", texts)  # type: ignore[arg-type]
    assert len(embedder.embedded) <= 3 * indexer_module.BATCH_SIZE < len(texts)
    assert store.count(library.collection_id, "d-failing") == indexer_module.BATCH_SIZE


def test_a_document_held_by_a_live_indexer_is_left_for_later(indexer: Indexer, library: Library) -> None:
    document_id = library.add("motion.md", MOTION)
    indexer.aws.documents.update_item(
        Key={"collection_id": library.collection_id, "document_id": document_id},
        UpdateExpression="SET #s = :extracting, claim = :other, updated_at = :now",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":extracting": "extracting", ":other": "other", ":now": indexer_module.now_iso()},
    )
    with pytest.raises(indexer_module.InProgress):
        indexer.handle(library.notification(document_id))


def test_the_same_bytes_again_in_the_collection_embed_nothing(
    indexer: Indexer, library: Library, store: Store, embedder: CountingEmbedder
) -> None:
    first = library.add("motion.md", MOTION)
    indexer.handle(library.notification(first))
    embedded = len(embedder.embedded)
    copy = library.add("motion-copy.md", MOTION)
    indexer.handle(library.notification(copy))
    assert len(embedder.embedded) == embedded
    row = library.row(copy)
    assert row["status"] == "indexed" and row["chunks_total"] == library.row(first)["chunks_total"]
    assert store.count(library.collection_id, copy) == row["chunks_total"]
    assert library.collection()["document_count"] == 2


def test_a_delete_during_a_slow_embed_leaves_no_chunks(
    indexer: Indexer, library: Library, store: Store, embedder: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexer_module, "PROGRESS_SECONDS", 0.0)  # a progress write after every batch
    document_id = library.add("long.txt", paragraphs(150))
    embedder.gate = threading.Event()
    worker = threading.Thread(target=indexer.handle, args=(library.notification(document_id),))
    worker.start()
    try:
        assert embedder.entered.wait(60)
        # The API marks the document deleting and queues the delete; the delete runs mid-embed.
        indexer.aws.documents.update_item(
            Key={"collection_id": library.collection_id, "document_id": document_id},
            UpdateExpression="SET #s = :deleting",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":deleting": "deleting"},
        )
        indexer.handle(
            json.dumps(
                {"action": contract.DELETE_DOCUMENT, "collection_id": library.collection_id, "document_id": document_id}
            )
        )
    finally:
        embedder.gate.set()
        worker.join(120)
    assert not worker.is_alive()
    assert store.count(library.collection_id, document_id) == 0
    assert library.row(document_id) is None and not library.has_chunks_file(document_id)
    assert len(embedder.embedded) < len(indexer_module.chunk_text(paragraphs(150).decode()))  # it stopped early
    assert (library.collection()["document_count"], library.collection()["chunk_count"]) == (0, 0)


def test_a_new_version_is_searchable_before_the_old_one_goes(
    indexer: Indexer, library: Library, store: Store, embedder: CountingEmbedder
) -> None:
    old = library.add("notes.md", paragraphs(3, "version one"))
    indexer.handle(library.notification(old))
    new = library.add("notes.md", paragraphs(3, "version two"))
    embedder.gate = threading.Event()
    worker = threading.Thread(target=indexer.handle, args=(library.notification(new),))
    worker.start()
    try:
        assert embedder.entered.wait(60)
        assert store.count(library.collection_id, old) == 3  # while the new one embeds, the old one answers
    finally:
        embedder.gate.set()
        worker.join(120)
    assert library.row(old) is None and store.count(library.collection_id, old) == 0
    assert not library.has_chunks_file(old)
    assert library.row(new)["status"] == "indexed" and store.count(library.collection_id, new) == 3
    collection = library.collection()
    assert (collection["document_count"], collection["chunk_count"]) == (1, 3)


def test_a_redelivery_after_indexed_finishes_retiring_the_older_version(
    indexer: Indexer, library: Library, store: Store, embedder: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = library.add("notes.md", paragraphs(2, "version one"))
    indexer.handle(library.notification(old))
    new = library.add("notes.md", paragraphs(2, "version two"))

    def crash(_: object) -> None:
        raise ConnectionError("the indexer lost DynamoDB right after `indexed`")

    monkeypatch.setattr(indexer, "_retire_older_versions", crash)
    with pytest.raises(ConnectionError):
        indexer.handle(library.notification(new))
    monkeypatch.undo()
    embedded = len(embedder.embedded)
    indexer.handle(library.notification(new))  # the message comes back
    assert len(embedder.embedded) == embedded
    assert library.row(old) is None and store.count(library.collection_id, old) == 0
    assert library.row(new)["status"] == "indexed"


def test_a_deleted_document_leaves_no_chunks_file_upload_or_count_and_a_second_delete_changes_nothing(
    indexer: Indexer, library: Library, store: Store
) -> None:
    kept = library.add("kept.md", paragraphs(2, "kept"))
    gone = library.add("motion.md", MOTION)
    for document_id in (kept, gone):
        indexer.handle(library.notification(document_id))
    delete = json.dumps(
        {"action": contract.DELETE_DOCUMENT, "collection_id": library.collection_id, "document_id": gone}
    )
    indexer.handle(delete)
    indexer.handle(delete)
    assert library.row(gone) is None and store.count(library.collection_id, gone) == 0
    assert not library.has_chunks_file(gone)
    assert indexer.aws.s3.list_objects_v2(Bucket=indexer.aws.bucket, Prefix=library.key(gone)).get("KeyCount") == 0
    collection = library.collection()
    assert (collection["document_count"], collection["chunk_count"]) == (1, 2)
    assert store.count(library.collection_id, kept) == 2


def test_a_deleted_collection_leaves_nothing(indexer: Indexer, library: Library, store: Store) -> None:
    documents = [library.add(f"part-{n}.md", paragraphs(2, f"part {n}")) for n in range(2)]
    for document_id in documents:
        indexer.handle(library.notification(document_id))
    indexer.handle(
        json.dumps(
            {"action": contract.DELETE_COLLECTION, "collection_id": library.collection_id, "user_id": library.user_id}
        )
    )
    assert store.count(library.collection_id) == 0
    assert all(library.row(d) is None and not library.has_chunks_file(d) for d in documents)
    assert "Item" not in indexer.aws.collections.get_item(
        Key={"user_id": library.user_id, "collection_id": library.collection_id}, ConsistentRead=True
    )


def test_a_pdf_with_text_is_indexed(indexer: Indexer, library: Library, store: Store) -> None:
    document_id = library.add("paper.pdf", text_pdf(["Near-infrared light reaches the cortex.", "It is scattered."]))
    indexer.handle(library.notification(document_id))
    assert library.row(document_id)["status"] == "indexed"
    assert store.count(library.collection_id, document_id) == 1


BAD_FILES = {
    "encrypted_pdf": ("locked.pdf", encrypted_pdf()),
    "no_text": ("scan.pdf", blank_pdf()),
    "not_text": ("photo.txt", bytes(range(256)) * 8),
    "unsupported_type": ("tool.exe", b"MZ\x90\x00"),
}


@pytest.mark.parametrize("code", [*BAD_FILES, "latin-1", "nul", "broken_pdf"])
def test_a_bad_file_fails_with_its_code_and_leaves_nothing(
    indexer: Indexer, library: Library, store: Store, embedder: CountingEmbedder, code: str
) -> None:
    filename, data = {
        "latin-1": ("notes.md", "Caf\xe9 r\xe9sum\xe9".encode("latin-1")),
        "nul": ("notes.txt", b"text\x00with a NUL"),
        "broken_pdf": ("cut.pdf", text_pdf(["a sentence"])[:60]),
    }.get(code, BAD_FILES.get(code, ("", b"")))
    expected = {"latin-1": "not_text", "nul": "not_text", "broken_pdf": "no_text"}.get(code, code)
    document_id = library.add(filename, data)
    indexer.handle(library.notification(document_id))
    assert_failed(library, document_id, expected)
    assert embedder.embedded == [] and store.count(library.collection_id, document_id) == 0


def test_an_object_larger_than_announced_fails_too_large_unread(indexer: Indexer, library: Library) -> None:
    document_id = library.add("notes.md", paragraphs(2), declared=100)
    indexer.handle(library.notification(document_id))
    assert_failed(library, document_id, "too_large")


def test_a_document_of_too_many_chunks_fails_before_embedding(
    indexer: Indexer, library: Library, embedder: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contract, "MAX_DOCUMENT_CHUNKS", 5)
    document_id = library.add("long.md", paragraphs(10))
    indexer.handle(library.notification(document_id))
    assert_failed(library, document_id, "too_many_chunks")
    assert embedder.embedded == []


def test_an_extraction_past_its_deadline_fails_extract_timeout(
    aws: indexer_module.Aws, store: Store, embedder: CountingEmbedder, library: Library
) -> None:
    # No child starts Python in 10 ms: the deadline passes with the child still at work.
    slow = Indexer(aws, store, embedder, extract_seconds=0.01)
    document_id = library.add("paper.pdf", text_pdf(["Near-infrared light"]))
    slow.handle(library.notification(document_id))
    assert_failed(library, document_id, "extract_timeout")


def test_an_extraction_past_its_memory_bound_fails(tmp_path: Path) -> None:
    path = tmp_path / "paper.pdf"
    path.write_bytes(text_pdf(["Near-infrared light"]))
    with pytest.raises(ExtractFailed) as failed:
        extract(path, "paper.pdf", memory=32 * 1024**2)  # not even pypdf's import fits
    assert failed.value.code == "too_many_chunks"


def test_rebuild_refills_the_store_from_s3_without_embedding(
    indexer: Indexer, library: Library, store: Store, embedder: CountingEmbedder
) -> None:
    document_id = library.add("motion.md", MOTION)
    indexer.handle(library.notification(document_id))
    before = query(store, embedder, library, "motion artefacts")
    embedded = len(embedder.embedded)
    store.drop_collection(library.collection_id)
    assert indexer.rebuild([library.collection_id]) == library.row(document_id)["chunks_total"]
    assert len(embedder.embedded) == embedded
    assert query(store, embedder, library, "motion artefacts") == before


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}),
        json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"key": "chunks/x/y.jsonl.gz"}}}]}),
        json.dumps({"Records": [{"eventName": "ObjectRemoved:Delete", "s3": {"object": {"key": "uploads/a/b/c"}}}]}),
        json.dumps([1, 2]),
    ],
)
def test_messages_that_name_no_upload_change_nothing(indexer: Indexer, body: str, embedder: CountingEmbedder) -> None:
    indexer.handle(body)
    assert embedder.embedded == []


def test_an_upload_under_another_users_prefix_is_not_indexed(
    indexer: Indexer, library: Library, embedder: CountingEmbedder
) -> None:
    document_id = library.add("motion.md", MOTION)
    indexer.index(Upload("someone-else", library.collection_id, document_id))
    assert library.row(document_id)["status"] == "awaiting_upload" and embedder.embedded == []


def assert_failed(library: Library, document_id: str, code: str) -> None:
    row = library.row(document_id)
    assert row is not None and row["status"] == "failed", row
    assert row["error_code"] == code and row["error_message"] and "claim" not in row
    assert not library.has_chunks_file(document_id)
    assert library.collection()["chunk_count"] == 0
