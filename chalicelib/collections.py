"""Collections: a user's named sets of documents, created, read, listed and deleted by their
owner only, and the one place an agent's collection name becomes a collection id.

A name is claimed by a conditional put beside its collection (models.CollectionName), in the
same transaction, so two creates with one name cannot both win. Deleting frees the name at
once and asks the indexer to remove the documents, their chunks and finally the row.

Each collection counts against the user's `collections` limit from its create until its delete;
the delete also gives back its documents still counted against `documents` (chalicelib.usage).
"""

from __future__ import annotations

import json
from typing import Any

from pynamodb.exceptions import DoesNotExist
from pynamodb.transactions import TransactWrite

import contract
from chalicelib import aws, usage, validation
from chalicelib.clock import new_id, now_iso
from chalicelib.errors import Conflict, Invalid, NotFound, Unavailable
from chalicelib.models import Agent, Collection, CollectionName, Document, conditional
from chalicelib.pagination import query_page

# A collection's statuses: in use, then on its way out (its documents and chunks going).
ACTIVE = "active"


def create(user_id: str, body: dict[str, Any]) -> Collection:
    fields = validation.collection_fields(body)
    stamp = now_iso()
    collection = Collection(user_id, new_id(), **fields, status=ACTIVE, created_at=stamp, updated_at=stamp)
    claim = CollectionName(user_id, CollectionName.claim_of(fields["name"]), target_id=collection.collection_id)
    taken = Conflict(f"You already have a collection named {fields['name']!r}.", contract.NAME_TAKEN, "name")
    usage.acquire(user_id, "collections")
    try:
        with conditional(taken), TransactWrite(connection=aws.dynamodb()) as transaction:
            transaction.save(claim, condition=CollectionName.claim.does_not_exist())
            transaction.save(collection, condition=Collection.collection_id.does_not_exist())
    except Exception:
        usage.release(user_id, "collections")
        raise
    return collection


def get(user_id: str, collection_id: str) -> Collection:
    """The caller's collection; another user's is keyed under another user_id, so it answers
    exactly as a missing one."""
    collection_id = validation.uuid_param(collection_id, "collection_id")
    try:
        return Collection.get(user_id, collection_id, consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"Collection {collection_id} not found.") from None


def list_page(user_id: str, limit: int, token: str | None) -> tuple[list[Collection], str | None]:
    return query_page(Collection.by_owner, "user_id", user_id, "collection_id", limit, token)


def find(user_id: str, name: str) -> Collection | None:
    """The caller's active collection of this name; never one of another user's."""
    try:
        claim = CollectionName.get(user_id, CollectionName.claim_of(name), consistent_read=True)
        collection = Collection.get(user_id, claim.target_id, consistent_read=True)
    except DoesNotExist:
        return None
    return collection if collection.status == ACTIVE else None


def check_agent_collection(user_id: str, config: dict[str, Any]) -> None:
    """An agent's (or a run's) config may name only one of the caller's own collections."""
    name = config.get("collection")
    if name is not None and find(user_id, name) is None:
        raise Invalid(
            f"You have no collection named {name!r}; create it first, or set 'config.collection' to null.",
            field="config.collection",
        )


def delete(user_id: str, collection_id: str) -> Collection:
    """Mark the collection deleting, free its name and queue its removal; refused while one of
    the caller's agents names it. A repeated delete queues the removal again (the indexer's
    removal is idempotent), so a client may retry one whose message could not be sent."""
    collection = get(user_id, collection_id)
    if collection.status == ACTIVE:
        users = _agents_naming(user_id, collection.name)
        if users:
            named = ", ".join(f"{agent.name!r} ({agent.agent_id})" for agent in users[:3])
            raise Conflict(
                f"Collection {collection.name!r} is used by {len(users)} agent(s): {named}; "
                "point them at another collection or null first.",
                contract.IN_USE,
            )
        _mark_deleting(collection)
        # Only the delete whose transaction marked it gets here: a repeated one sees it deleting.
        usage.release(user_id, "collections")
        usage.release(user_id, "documents", _documents_counted(collection))
    queue_removal({"action": contract.DELETE_COLLECTION, "collection_id": collection.collection_id, "user_id": user_id})
    return collection


def queue_removal(message: dict[str, str]) -> None:
    """Ask the indexer, on the ingest queue, to remove what it indexed (contract DELETE_*)."""
    try:
        aws.sqs().send_message(QueueUrl=aws.ingest_queue_url(), MessageBody=json.dumps(message))
    except Exception as err:
        raise Unavailable("It is marked deleting, but its removal could not be queued; send the delete again.") from err


def _agents_naming(user_id: str, name: str) -> list[Agent]:
    return [agent for agent in Agent.by_owner.query(user_id) if agent.config.get("collection") == name]


def _documents_counted(collection: Collection) -> int:
    """Its documents still counted against the user's limit: all but those deleted one by one,
    which gave theirs back. Read after the collection is marked deleting, and consistently: no
    document is added or marked deleting once it is (documents.create and documents.delete
    both check that the collection is active in their transaction), so none is missed or
    given back twice."""
    return Document.count(
        collection.collection_id, filter_condition=Document.status != contract.DELETING, consistent_read=True
    )


def _mark_deleting(collection: Collection) -> None:
    stamp = now_iso()
    claim = CollectionName(collection.user_id, CollectionName.claim_of(collection.name))
    changed = Conflict(f"Collection {collection.collection_id} changed meanwhile; read it again.")
    with conditional(changed), TransactWrite(connection=aws.dynamodb()) as transaction:
        transaction.update(
            collection,
            actions=[Collection.status.set(contract.DELETING), Collection.updated_at.set(stamp)],
            condition=Collection.status == ACTIVE,
        )
        transaction.delete(claim, condition=CollectionName.target_id == collection.collection_id)
    collection.status, collection.updated_at = contract.DELETING, stamp
