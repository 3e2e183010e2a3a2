"""The indexer (DESIGN.md §1, §6): reads the ingest queue and makes uploaded documents searchable.

S3 `ObjectCreated` for `uploads/{user}/{collection}/{document}` → claim the document's row with
a conditional write → extract (extract.py) → chunk → embed → upsert into the shared store →
chunks and vectors to S3 (`contract.chunks_key`) → `indexed`. Control messages delete a
document or a collection. Every write after the claim is conditional on it, so a delete that
lands mid-way stops the work and nothing it wrote stays behind.

`python -m mcp_container.indexer` serves the queue; `… rebuild` refills the store from S3
without embedding anything.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import contract
from mcp_container.chunking import chunk_text
from mcp_container.config import Settings, configure_logging
from mcp_container.embedder import BATCH_SIZE, Embedder
from mcp_container.extract import ExtractFailed, extract, read_text
from mcp_container.store import Store, StoredChunk

log = logging.getLogger(__name__)

# chunks_done is written about this often while a document embeds (DESIGN.md: not per chunk).
PROGRESS_SECONDS = 1.0
# A claim whose row has not moved for this long belongs to an indexer that died: another may
# take the document over (the row's updated_at moves with every progress write).
STALE_CLAIM_SECONDS = 300
# The message stays invisible this long while it is worked on, renewed as the work goes on.
VISIBILITY_SECONDS = 120
WAIT_SECONDS = 20  # SQS long polling's maximum
STATUS_IN_WORK = ("extracting", "embedding")


class Abandoned(Exception):
    """The document was deleted (or claimed by another indexer) while this one worked on it."""


class InProgress(Exception):
    """Another live indexer holds the document: leave the message for a later delivery."""


def embed_chunks(
    store: Store,
    embedder: Embedder,
    collection_id: str,
    document_id: str,
    source: str,
    texts: Sequence[str],
    progress: Callable[[int], None] = lambda done: None,
) -> list[StoredChunk]:
    """Embed what the store does not hold yet and upsert each batch as soon as it is embedded, so
    a redelivery embeds nothing twice. Longest first, in the embedder's batch size: batches pad
    little. A batch is written while the next one embeds (ONNX Runtime and the store's HTTP call
    both release the GIL), one write in flight at a time, so a failed write or a delete seen by
    `progress` stops the work one batch later at most."""
    held = {i: c for i, c in store.stored(collection_id, document_id, range(len(texts))).items() if c.text == texts[i]}
    missing = sorted((i for i in range(len(texts)) if i not in held), key=lambda i: len(texts[i]), reverse=True)

    def write(batch: list[int], vectors: list[list[float]]) -> None:
        store.upsert(collection_id, document_id, source, [(i, texts[i]) for i in batch], vectors)
        held.update({i: StoredChunk(i, texts[i], list(v)) for i, v in zip(batch, vectors, strict=True)})
        progress(len(held))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="upsert") as writer:
        writing: Future[None] | None = None
        for start in range(0, len(missing), BATCH_SIZE):
            batch = missing[start : start + BATCH_SIZE]
            vectors = embedder.embed([texts[i] for i in batch])
            if writing is not None:
                writing.result()
            writing = writer.submit(write, batch, vectors)
        if writing is not None:
            writing.result()
    return [held[i] for i in range(len(texts))]


def index_folder(store: Store, embedder: Embedder, root: Path, collection_id: str) -> int:
    """Index a folder's .md, .txt and .pdf files straight into the store, without AWS: for a
    one-process index (tests, benchmarks). Document ids come from the paths, so running it
    again embeds nothing. Returns the chunks the collection holds from it."""
    total = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in contract.DOCUMENT_TYPES):
        source = path.relative_to(root).as_posix()
        document_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{collection_id}/{source}"))
        texts = chunk_text(read_text(path.read_bytes(), path.suffix.lower()))
        total += len(embed_chunks(store, embedder, collection_id, document_id, source, texts))
    return total


def now_iso(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Upload:
    """Which document an `uploads/…` key belongs to (keys come from `contract.upload_key`)."""

    user_id: str
    collection_id: str
    document_id: str

    @classmethod
    def from_key(cls, key: str) -> Upload | None:
        parts = key.split("/")
        if len(parts) != 4 or parts[0] != "uploads" or not all(parts[1:]):
            return None
        return cls(parts[1], parts[2], parts[3])


@dataclass
class Aws:
    """The indexer's AWS clients and names; boto3 reads AWS_ENDPOINT_URL itself (locally, moto)."""

    s3: Any
    sqs: Any
    dynamodb: Any  # a boto3 DynamoDB resource: plain Python values in and out
    settings: Settings

    @classmethod
    def create(cls, settings: Settings) -> Aws:
        import boto3

        session = boto3.session.Session()
        return cls(session.client("s3"), session.client("sqs"), session.resource("dynamodb"), settings)

    @property
    def documents(self) -> Any:
        return self.dynamodb.Table(self.settings.documents_table)

    @property
    def collections(self) -> Any:
        return self.dynamodb.Table(self.settings.collections_table)

    @property
    def bucket(self) -> str:
        return self.settings.require_bucket()


@dataclass
class Claim:
    """This indexer's hold on one document: every later write is conditional on `token`."""

    row: dict[str, Any]
    token: str

    @property
    def key(self) -> dict[str, str]:
        return {"collection_id": self.row["collection_id"], "document_id": self.row["document_id"]}


class Indexer:
    def __init__(self, aws: Aws, store: Store, embedder: Embedder, extract_seconds: float | None = None) -> None:
        self.aws = aws
        self.store = store
        self.embedder = embedder
        self._extract: Callable[[Path, str], str] = (
            extract if extract_seconds is None else lambda path, name: extract(path, name, extract_seconds)
        )

    # --- messages -------------------------------------------------------------------------

    def handle(self, body: str, heartbeat: Callable[[], None] = lambda: None) -> None:
        """One message of the ingest queue. Raises InProgress to have it delivered again later."""
        try:
            message = json.loads(body)
        except ValueError:
            log.warning("dropping a message that is not JSON: %.200s", body)
            return
        if not isinstance(message, dict) or message.get("Event") == "s3:TestEvent":
            return
        action = message.get("action")
        if action == contract.DELETE_DOCUMENT:
            self.delete_document(str(message["collection_id"]), str(message["document_id"]))
        elif action == contract.DELETE_COLLECTION:
            user_id = message.get("user_id")
            self.delete_collection(str(message["collection_id"]), None if user_id is None else str(user_id))
        for record in message.get("Records") or []:
            if not str(record.get("eventName", "")).startswith("ObjectCreated"):
                continue
            key = unquote_plus(record["s3"]["object"]["key"])  # S3 URL-encodes keys in notifications
            upload = Upload.from_key(key)
            if upload is None:
                log.warning("ignoring an object outside uploads/USER/COLLECTION/DOCUMENT: %r", key)
                continue
            self.index(upload, heartbeat)

    # --- indexing -------------------------------------------------------------------------

    def index(self, upload: Upload, heartbeat: Callable[[], None] = lambda: None) -> None:
        claim = self._claim(upload)
        if claim is None:
            current = self._row(upload.collection_id, upload.document_id)
            if current is not None and current.get("status") == "indexed":
                # A redelivery after `indexed`: finish what that delivery may not have.
                self._retire_older_versions(current)
            return
        try:
            self._index_claimed(upload, claim, heartbeat)
        except ExtractFailed as failure:
            self._fail(claim, failure.code, str(failure))
        except Abandoned:
            log.info("document %s was deleted while being indexed: removing what was written", upload.document_id)
            self._remove_index(upload.collection_id, upload.document_id)

    def _index_claimed(self, upload: Upload, claim: Claim, heartbeat: Callable[[], None]) -> None:
        key = contract.upload_key(upload.user_id, upload.collection_id, upload.document_id)
        declared = int(claim.row.get("size") or contract.MAX_DOCUMENT_BYTES)
        size = int(self.aws.s3.head_object(Bucket=self.aws.bucket, Key=key)["ContentLength"])
        if size > min(declared, contract.MAX_DOCUMENT_BYTES):
            raise ExtractFailed(
                contract.TOO_LARGE,
                f"The file has {size:,} bytes; at most {min(declared, contract.MAX_DOCUMENT_BYTES):,} may be indexed.",
            )
        data = self.aws.s3.get_object(Bucket=self.aws.bucket, Key=key)["Body"].read()
        sha256 = hashlib.sha256(data).hexdigest()
        self._update(claim, {"sha256": sha256})
        reused = self._reusable_chunks(upload.collection_id, upload.document_id, sha256)
        if reused is not None:
            log.info("document %s: same bytes already embedded, reusing %d chunks", upload.document_id, len(reused))
            self._set_embedding(claim, len(reused))
            self.store.upsert(
                upload.collection_id,
                upload.document_id,
                claim.row["filename"],
                [(c.index, c.text) for c in reused],
                [c.vector for c in reused],
            )
            chunks = reused
        else:
            with tempfile.NamedTemporaryFile(prefix="upload-") as file:
                file.write(data)
                file.flush()
                text = self._extract(Path(file.name), str(claim.row["filename"]))
            texts = chunk_text(text)
            if not texts:
                raise ExtractFailed("no_text")
            if len(texts) > contract.MAX_DOCUMENT_CHUNKS:
                raise ExtractFailed(
                    "too_many_chunks",
                    f"The document makes {len(texts):,} chunks; at most {contract.MAX_DOCUMENT_CHUNKS:,} are allowed.",
                )
            self._set_embedding(claim, len(texts))
            chunks = self._embed(upload, claim, texts, heartbeat)
        self._write_chunks(upload, chunks, sha256)
        self._finish(claim, len(chunks))
        self._retire_older_versions(claim.row)

    def _embed(
        self, upload: Upload, claim: Claim, texts: Sequence[str], heartbeat: Callable[[], None]
    ) -> list[StoredChunk]:
        reported = time.monotonic()

        def progress(done: int) -> None:
            nonlocal reported
            if time.monotonic() - reported >= PROGRESS_SECONDS:
                # Also the check that the document still exists: a delete stops the work here.
                self._update(claim, {"chunks_done": done})
                heartbeat()
                reported = time.monotonic()

        return embed_chunks(
            self.store, self.embedder, upload.collection_id, upload.document_id, claim.row["filename"], texts, progress
        )

    # --- the documents table --------------------------------------------------------------

    def _claim(self, upload: Upload) -> Claim | None:
        from botocore.exceptions import ClientError

        token = str(uuid.uuid4())
        now = datetime.now(UTC)
        try:
            row = self.aws.documents.update_item(
                Key={"collection_id": upload.collection_id, "document_id": upload.document_id},
                UpdateExpression="SET #s = :extracting, claim = :token, updated_at = :now, chunks_done = :zero "
                "REMOVE error_code, error_message",
                ConditionExpression="user_id = :user AND (#s IN (:awaiting, :queued) "
                "OR (#s IN (:extracting, :embedding) AND updated_at < :stale))",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":extracting": "extracting",
                    ":embedding": "embedding",
                    ":awaiting": "awaiting_upload",
                    ":queued": "queued",
                    ":token": token,
                    ":now": now_iso(now),
                    ":zero": 0,
                    ":user": upload.user_id,
                    ":stale": now_iso(now - timedelta(seconds=STALE_CLAIM_SECONDS)),
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            current = self._row(upload.collection_id, upload.document_id)
            if current is not None and current.get("status") in STATUS_IN_WORK:
                raise InProgress(f"document {upload.document_id} is being indexed by another indexer") from None
            log.info("document %s: nothing to do (%s)", upload.document_id, current and current.get("status"))
            return None
        return Claim(row, token)

    def _update(self, claim: Claim, fields: dict[str, Any], status: str | None = None, release: bool = False) -> None:
        """Set `fields` on the claimed row, only while the claim holds (else Abandoned)."""
        from botocore.exceptions import ClientError

        fields = {**fields, "updated_at": now_iso(), **({"status": status} if status else {})}
        names = {f"#f{n}": name for n, name in enumerate(fields)}
        values = {f":f{n}": value for n, value in enumerate(fields.values())}
        expression = "SET " + ", ".join(f"#f{n} = :f{n}" for n in range(len(fields)))
        try:
            self.aws.documents.update_item(
                Key=claim.key,
                UpdateExpression=expression + (" REMOVE claim" if release else ""),
                ConditionExpression="claim = :token AND #status IN (:extracting, :embedding)",
                ExpressionAttributeNames={**names, "#status": "status"},
                ExpressionAttributeValues={
                    **values,
                    ":token": claim.token,
                    ":extracting": "extracting",
                    ":embedding": "embedding",
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise Abandoned(claim.row["document_id"]) from None
            raise

    def _set_embedding(self, claim: Claim, total: int) -> None:
        self._update(claim, {"chunks_total": total}, status="embedding")

    def _finish(self, claim: Claim, total: int) -> None:
        """`indexed`, and the collection's chunk count, in one transaction: counted exactly once
        (the API counted the document itself when it made the row)."""
        from botocore.exceptions import ClientError

        now = now_iso()
        client = self.aws.dynamodb.meta.client
        try:
            client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.aws.settings.documents_table,
                            "Key": claim.key,
                            "UpdateExpression": "SET #s = :indexed, chunks_done = :total, chunks_total = :total, "
                            "indexed_at = :now, updated_at = :now REMOVE claim",
                            "ConditionExpression": "claim = :token AND #s = :embedding",
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": {
                                ":indexed": "indexed",
                                ":total": total,
                                ":now": now,
                                ":token": claim.token,
                                ":embedding": "embedding",
                            },
                        }
                    },
                    self._count_update(claim.row["user_id"], claim.row["collection_id"], 1, total, now),
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                raise Abandoned(claim.row["document_id"]) from None
            raise

    def _count_update(self, user_id: str, collection_id: str, documents: int, chunks: int, now: str) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.aws.settings.collections_table,
                "Key": {"user_id": user_id, "collection_id": collection_id},
                "UpdateExpression": "ADD document_count :documents, chunk_count :chunks SET updated_at = :now",
                "ConditionExpression": "attribute_exists(collection_id)",
                "ExpressionAttributeValues": {":documents": documents, ":chunks": chunks, ":now": now},
            }
        }

    def _fail(self, claim: Claim, code: str, message: str) -> None:
        log.info("document %s failed: %s (%s)", claim.row["document_id"], code, message)
        try:
            self._update(claim, {"error_code": code, "error_message": message}, status="failed", release=True)
        except Abandoned:
            pass  # deleted meanwhile: nothing to report the failure on
        self._remove_index(claim.row["collection_id"], claim.row["document_id"])

    def _row(self, collection_id: str, document_id: str) -> dict[str, Any] | None:
        got = self.aws.documents.get_item(
            Key={"collection_id": collection_id, "document_id": document_id}, ConsistentRead=True
        )
        return got.get("Item")

    def _rows(self, collection_id: str) -> Iterator[dict[str, Any]]:
        from boto3.dynamodb.conditions import Key

        query: dict[str, Any] = {
            "KeyConditionExpression": Key("collection_id").eq(collection_id),
            "ConsistentRead": True,
        }
        while True:
            page = self.aws.documents.query(**query)
            yield from page["Items"]
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- chunks in S3 ---------------------------------------------------------------------

    def _write_chunks(self, upload: Upload, chunks: Sequence[StoredChunk], sha256: str) -> None:
        lines = (json.dumps({"index": c.index, "text": c.text, "vector": c.vector}) for c in chunks)
        self.aws.s3.put_object(
            Bucket=self.aws.bucket,
            Key=contract.chunks_key(upload.collection_id, upload.document_id),
            Body=gzip.compress("\n".join(lines).encode("utf-8"), compresslevel=5),
            ContentType="application/jsonl",
            ContentEncoding="gzip",
            Metadata={"sha256": sha256},
        )

    def _read_chunks(self, collection_id: str, document_id: str) -> tuple[str, list[StoredChunk]] | None:
        """The document's chunks file and the sha256 of the bytes it was made from, if there is one."""
        from botocore.exceptions import ClientError

        try:
            got = self.aws.s3.get_object(Bucket=self.aws.bucket, Key=contract.chunks_key(collection_id, document_id))
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise
        text = gzip.decompress(got["Body"].read()).decode("utf-8")
        chunks = [StoredChunk(int(r["index"]), r["text"], r["vector"]) for r in map(json.loads, text.splitlines())]
        return got.get("Metadata", {}).get("sha256", ""), chunks

    def _reusable_chunks(self, collection_id: str, document_id: str, sha256: str) -> list[StoredChunk] | None:
        """Chunks already embedded from the same bytes: this document's own (a redelivery after
        its chunks were written), else an indexed document of the collection with the same sha256."""
        candidates = [document_id] + [
            row["document_id"]
            for row in self._rows(collection_id)
            if row.get("sha256") == sha256 and row.get("status") == "indexed" and row["document_id"] != document_id
        ]
        for candidate in candidates:
            found = self._read_chunks(collection_id, candidate)
            if found is not None and found[0] == sha256:
                return found[1]
        return None

    # --- deleting -------------------------------------------------------------------------

    def _retire_older_versions(self, newer: dict[str, Any]) -> None:
        """A new version of a file is searchable now: the older ones' chunks may go."""
        for row in self._rows(newer["collection_id"]):
            if (
                row["document_id"] != newer["document_id"]
                and row.get("filename") == newer["filename"]
                and row.get("status") == "indexed"
                and row.get("created_at", "") <= newer.get("created_at", "")
            ):
                log.info("document %s replaces %s (%s)", newer["document_id"], row["document_id"], newer["filename"])
                self.delete_document(row["collection_id"], row["document_id"])

    def delete_document(self, collection_id: str, document_id: str) -> None:
        """Chunks out of the store and S3, the original out of S3, then the row (and its counts)."""
        row = self._row(collection_id, document_id)
        self._remove_index(collection_id, document_id)
        if row is None:
            return
        self.aws.s3.delete_object(
            Bucket=self.aws.bucket, Key=contract.upload_key(row["user_id"], collection_id, document_id)
        )
        self._delete_row(row)

    def _delete_row(self, row: dict[str, Any]) -> None:
        """The row and its share of the collection's counts go together, so a redelivered delete
        cannot subtract twice. A document and its chunks count in the collection from the moment
        they were indexed (the API counts nothing), so only an indexed row takes them back."""
        from botocore.exceptions import ClientError

        key = {"collection_id": row["collection_id"], "document_id": row["document_id"]}
        indexed = "indexed_at" in row
        documents, chunks = (1, int(row.get("chunks_total", 0))) if indexed else (0, 0)
        try:
            self.aws.dynamodb.meta.client.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self.aws.settings.documents_table,
                            "Key": key,
                            "ConditionExpression": "attribute_exists(document_id)",
                        }
                    },
                    self._count_update(row["user_id"], row["collection_id"], -documents, -chunks, now_iso()),
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            # Deleted already (a redelivery), or its collection's row is gone: nothing to count.
            self.aws.documents.delete_item(Key=key)

    def _remove_index(self, collection_id: str, document_id: str) -> None:
        self.store.delete_document(collection_id, document_id)
        self.aws.s3.delete_object(Bucket=self.aws.bucket, Key=contract.chunks_key(collection_id, document_id))

    def delete_collection(self, collection_id: str, user_id: str | None) -> None:
        """Every document's files and rows, the collection's index (dropped whole, not document by
        document), then its row."""
        for row in list(self._rows(collection_id)):
            document_id = row["document_id"]
            files = (
                contract.chunks_key(collection_id, document_id),
                contract.upload_key(row["user_id"], collection_id, document_id),
            )
            self.aws.s3.delete_objects(Bucket=self.aws.bucket, Delete={"Objects": [{"Key": key} for key in files]})
            self.aws.documents.delete_item(Key={"collection_id": collection_id, "document_id": document_id})
        self.store.drop_collection(collection_id)
        if user_id is not None:
            self.aws.collections.delete_item(Key={"user_id": user_id, "collection_id": collection_id})

    # --- rebuilding -----------------------------------------------------------------------

    def rebuild(self, collection_ids: Sequence[str] | None = None) -> int:
        """Refill the store from the chunks in S3, embedding nothing; returns the chunks written."""
        by_collection: dict[str, list[dict[str, Any]]] = {}
        scan: dict[str, Any] = {}
        while True:
            page = self.aws.documents.scan(**scan)
            for row in page["Items"]:
                if row.get("status") == "indexed" and (
                    collection_ids is None or row["collection_id"] in collection_ids
                ):
                    by_collection.setdefault(row["collection_id"], []).append(row)
            if "LastEvaluatedKey" not in page:
                break
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        written = 0
        for collection_id in collection_ids or sorted(by_collection):
            self.store.drop_collection(collection_id)
            for row in by_collection.get(collection_id, []):
                found = self._read_chunks(collection_id, row["document_id"])
                if found is None:
                    log.warning("document %s is indexed but has no chunks in S3", row["document_id"])
                    continue
                chunks = found[1]
                self.store.upsert(
                    collection_id,
                    row["document_id"],
                    row["filename"],
                    [(c.index, c.text) for c in chunks],
                    [c.vector for c in chunks],
                )
                written += len(chunks)
            log.info("collection %s rebuilt", collection_id)
        return written

    # --- the queue ------------------------------------------------------------------------

    def serve(self, stop: threading.Event) -> None:
        """Long-poll the ingest queue until `stop` is set; a message is deleted once handled."""
        sqs = self.aws.sqs
        queue_url = sqs.get_queue_url(QueueName=self.aws.settings.ingest_queue)["QueueUrl"]
        log.info("indexer reading %s into %s", queue_url, self.store.where)
        while not stop.is_set():
            messages = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=WAIT_SECONDS,
                VisibilityTimeout=VISIBILITY_SECONDS,
            ).get("Messages", [])
            for message in messages:
                if stop.is_set():
                    break  # left for the next indexer: its visibility timeout brings it back
                receipt = message["ReceiptHandle"]
                try:
                    self.handle(message["Body"], _renewer(sqs, queue_url, receipt))
                except InProgress as busy:
                    log.info("%s; it comes back later", busy)
                    continue
                except Exception:  # the message comes back after its timeout, and ends in the DLQ
                    log.exception("message %s failed", message.get("MessageId"))
                    continue
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt)


def _renewer(sqs: Any, queue_url: str, receipt: str) -> Callable[[], None]:
    """Keeps a message invisible while its document is worked on, renewing at most every half timeout."""
    renewed = time.monotonic()

    def renew() -> None:
        nonlocal renewed
        if time.monotonic() - renewed >= VISIBILITY_SECONDS / 2:
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=VISIBILITY_SECONDS
            )
            renewed = time.monotonic()

    return renew


def create_indexer(settings: Settings) -> Indexer:
    """The indexer with its embedder loaded and its store reached once (importing chromadb takes
    seconds), so the first document pays neither."""
    from mcp_container.embedder import MiniLMEmbedder

    settings.require_bucket()  # before seconds of loading, not at the first message
    embedder = MiniLMEmbedder(settings.embedder_path)
    embedder.load()
    store = Store.open(settings)
    if not store.health():
        log.warning("the store at %s does not answer yet; documents wait on the queue meanwhile", store.where)
    return Indexer(Aws.create(settings), store, embedder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Index uploaded documents from the ingest queue.")
    commands = parser.add_subparsers(dest="command")
    rebuild = commands.add_parser("rebuild", help="refill the store from the chunks in S3, embedding nothing")
    rebuild.add_argument("--collection-id", action="append", help="only this collection (repeatable)")
    folder = commands.add_parser("index-folder", help="index a folder's files straight into the store (no AWS)")
    folder.add_argument("path", type=Path)
    folder.add_argument("--collection-id", required=True, type=contract.check_collection_id)
    args = parser.parse_args(argv)
    configure_logging("%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    if args.command == "index-folder":
        from mcp_container.embedder import MiniLMEmbedder

        chunks = index_folder(
            Store.open(settings), MiniLMEmbedder(settings.embedder_path), args.path, args.collection_id
        )
        log.info(
            "collection %s in %s: %d chunks from %s",
            args.collection_id,
            settings.chroma_url or settings.rag_db,
            chunks,
            args.path,
        )
        return 0
    indexer = create_indexer(settings)
    if args.command == "rebuild":
        written = indexer.rebuild(args.collection_id)
        log.info("rebuilt the store from S3: %d chunks", written)
        return 0
    stop = threading.Event()
    # ECS stops a task with SIGTERM: finish the message in hand, take no other.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    indexer.serve(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
