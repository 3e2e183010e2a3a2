"""Documents: the API's side of ingestion. A new document's row (awaiting_upload) and an S3
presigned POST for its bytes, which go from the client straight to S3 (never through API Gateway
or Lambda); reads, a paged list, deletion through the indexer, and the sweeper for documents
whose upload or indexing never finished.

The key of an upload is made of ids (contract.upload_key) and fixed in the POST's signed
policy, with the size range the client declared: a client cannot choose where its bytes land.

Each document counts against the user's `documents` limit (across their collections) from its
create until its delete, or its collection's (chalicelib.usage).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist
from pynamodb.expressions.condition import Condition
from pynamodb.transactions import TransactWrite

import contract
from chalicelib import aws, collections, usage, validation
from chalicelib.clock import iso, new_id, now, now_iso
from chalicelib.errors import Conflict, NotFound
from chalicelib.models import Collection, Document, conditional
from chalicelib.pagination import query_page
from chalicelib.settings import ConfigError
from chalicelib.telemetry import count

# Statuses from which a document still moves on by itself: the sweeper's concern.
INDEXING = ("queued", "extracting", "embedding")
# Documents whose bytes are (or will be) in the collection: a new upload of the same bytes
# answers with them. A failed or deleting one does not stand in the way of a new upload.
LIVE = ("awaiting_upload", *INDEXING, "indexed")
# An upload signed just before its expiry may still be on the wire: the sweeper waits this
# much longer before it calls the upload expired.
UPLOAD_GRACE_SECONDS = 900


@dataclass(frozen=True)
class Storage:
    """What this module needs of the settings: the stage's bucket, the sweeper's deadline."""

    bucket: str | None
    indexing_deadline_seconds: int


_storage: Storage | None = None


def configure(storage: Storage) -> None:
    global _storage
    _storage = storage


def _target() -> Storage:
    if _storage is None:
        raise RuntimeError("chalicelib is not wired: call chalicelib.wiring.wire(settings) first.")
    return _storage


def _bucket() -> str:
    bucket = _target().bucket
    if bucket is None:
        raise ConfigError(
            "DOCUMENTS_BUCKET is not set: the deploy passes the data stack's DocumentsBucketName, "
            "the local stack its endpoint's (its name carries the account id, which no stage config holds)."
        )
    return bucket


def create(user_id: str, collection_id: str, body: dict[str, Any]) -> tuple[Document, dict[str, Any] | None, bool]:
    """A document for these bytes and how to upload them: (document, upload, created).

    When the collection holds the same sha256 already, that document comes back instead: with
    no upload if its bytes arrived, with a new one if it still waits for them.
    """
    collection = collections.get(user_id, collection_id)
    fields = validation.document_fields(body)
    _require_active(collection)
    if fields["sha256"] is not None:
        existing = _same_bytes(collection.collection_id, fields["sha256"])
        if existing is not None:
            upload = presign(existing) if existing.status == "awaiting_upload" else None
            return existing, upload, False
    stamp = now_iso()
    document = Document(
        collection.collection_id,
        new_id(),
        user_id=user_id,
        **fields,
        status="awaiting_upload",
        created_at=stamp,
        updated_at=stamp,
    )
    # Only while the collection is not being deleted: its removal must find every document.
    # (Its document_count counts indexed documents; the indexer keeps it.)
    with (
        usage.held(user_id, "documents"),
        conditional(_deleting(collection)),
        TransactWrite(connection=aws.dynamodb()) as transaction,
    ):
        transaction.condition_check(Collection, user_id, collection.collection_id, condition=_active())
        transaction.save(document, condition=Document.document_id.does_not_exist())
    count("DocumentsCreated")
    return document, presign(document), True


def presign(document: Document) -> dict[str, Any]:
    """An S3 presigned POST for exactly this document's key and 1 … its declared size in bytes."""
    key = contract.upload_key(document.user_id, document.collection_id, document.document_id)
    return aws.s3().generate_presigned_post(
        Bucket=_bucket(),
        Key=key,
        Conditions=[["content-length-range", 1, int(document.size)]],
        ExpiresIn=contract.UPLOAD_EXPIRY_SECONDS,
    )


def get(user_id: str, collection_id: str, document_id: str) -> Document:
    """The caller's document; one of another user's answers exactly as a missing one."""
    collection = collections.get(user_id, collection_id)
    document_id = validation.uuid_param(document_id, "document_id")
    missing = NotFound(f"Document {document_id} not found.")
    try:
        document = Document.get(collection.collection_id, document_id, consistent_read=True)
    except DoesNotExist:
        raise missing from None
    # The collection is the caller's already; the row's owner is a second line of defence.
    if document.user_id != user_id:
        raise missing
    return document


def list_page(
    user_id: str, collection_id: str, params: dict[str, str]
) -> tuple[list[Document], str | None]:
    """A page of the collection's documents, newest first, optionally of one status."""
    collection = collections.get(user_id, collection_id)
    status = validation.document_status(params)
    condition = Document.status == status if status is not None else None
    return query_page(
        Document.by_collection,
        "collection_id",
        collection.collection_id,
        "document_id",
        validation.page_limit(params),
        params.get("next_token"),
        condition,
    )


def delete(user_id: str, collection_id: str, document_id: str) -> Document:
    """Mark the document deleting and ask the indexer to remove its chunks, original and row.
    A repeated delete queues the removal again, so a client may retry one that could not be queued."""
    document = get(user_id, collection_id, document_id)
    if document.status != contract.DELETING and _mark_deleting(document):
        usage.release(user_id, "documents")
    ids = {"collection_id": document.collection_id, "document_id": document.document_id}
    collections.queue_removal({"action": contract.DELETE_DOCUMENT, **ids})
    return document


def _mark_deleting(document: Document) -> bool:
    """Mark it deleting, only while its collection is active: whether this call did. Another
    delete that marked it first, or the collection's delete (which gives back the documents it
    finds undeleted), has given back its count already."""
    stamp = now_iso()
    try:
        with conditional(), TransactWrite(connection=aws.dynamodb()) as transaction:
            transaction.condition_check(Collection, document.user_id, document.collection_id, condition=_active())
            transaction.update(
                document,
                actions=[Document.status.set(contract.DELETING), Document.updated_at.set(stamp)],
                condition=Document.document_id.exists() & (Document.status != contract.DELETING),
            )
    except Conflict:
        return False
    document.status, document.updated_at = contract.DELETING, stamp
    return True


def _active() -> Condition:
    return Collection.status == collections.ACTIVE


def _require_active(collection: Collection) -> None:
    if collection.status != collections.ACTIVE:
        raise _deleting(collection)


def _deleting(collection: Collection) -> Conflict:
    return Conflict(f"Collection {collection.collection_id} is being deleted.", contract.DELETING)


def _same_bytes(collection_id: str, sha256: str) -> Document | None:
    matches = Document.query(
        collection_id, filter_condition=(Document.sha256 == sha256) & Document.status.is_in(*LIVE)
    )
    return next(iter(matches), None)


def sweep_stuck_documents() -> int:
    """Fail documents never uploaded (upload_expired) and documents whose indexer was lost
    mid-way (indexing_stalled) past their deadlines; every change is conditional on the status
    and the progress the sweeper saw, so a document that moved meanwhile is left alone."""
    deadlines = {
        "awaiting_upload": contract.UPLOAD_EXPIRY_SECONDS + UPLOAD_GRACE_SECONDS,
        **dict.fromkeys(INDEXING, _target().indexing_deadline_seconds),
    }
    swept = 0
    for status, seconds in deadlines.items():
        cutoff = iso(now() - timedelta(seconds=seconds))
        for key in Document.by_status.query(status, Document.updated_at < cutoff):
            swept += _fail_stuck(key.collection_id, key.document_id, status, cutoff, seconds)
    return swept


def _fail_stuck(collection_id: str, document_id: str, status: str, cutoff: str, seconds: int) -> bool:
    code = "upload_expired" if status == "awaiting_upload" else "indexing_stalled"
    message = (
        contract.DOCUMENT_FAILURES[code]
        if status == "awaiting_upload"
        else f"Indexing made no progress for {seconds} s while the document was {status}; upload it again."
    )
    document = Document(collection_id, document_id)
    try:
        with conditional():
            document.update(
                actions=[
                    Document.status.set("failed"),
                    Document.error_code.set(code),
                    Document.error_message.set(message),
                    Document.updated_at.set(now_iso()),
                ],
                condition=(Document.status == status) & (Document.updated_at < cutoff),
            )
    except Conflict:
        return False  # it moved after the index was read: not stuck after all
    count("DocumentsSwept")
    return True
