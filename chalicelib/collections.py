"""Collections: a user's named sets of documents, created, read, listed and deleted by their
owner only, and the one place an agent's collection name becomes a collection id.

A name is claimed by a conditional put beside its collection (models.CollectionName), in the
same transaction, so two creates with one name cannot both win. Deleting frees the name at
once and asks the indexer to remove the documents, their chunks and finally the row.

An agent's write records the agent on the claim of the collection it names, in the same
transaction and on condition the claim exists; a delete removes the claim on condition it
records no agent. So an agent and the delete of its collection cannot both win, however close.

Each collection counts against the user's `collections` limit from its create until its delete;
the delete also gives back its documents still counted against `documents` (chalicelib.usage).
"""

from __future__ import annotations

import json
from typing import Any

from pynamodb.exceptions import DoesNotExist
from pynamodb.expressions.condition import size
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
    with (
        usage.held(user_id, "collections"),
        conditional(taken),
        TransactWrite(connection=aws.dynamodb()) as transaction,
    ):
        transaction.save(claim, condition=CollectionName.claim.does_not_exist())
        transaction.save(collection, condition=Collection.collection_id.does_not_exist())
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


def find_id(user_id: str, name: str) -> str | None:
    """The id of the caller's active collection of this name; never one of another user's. One
    read: a name's claim exists exactly while its collection is active (written with it, deleted
    in the transaction that marks it deleting)."""
    try:
        return CollectionName.get(user_id, CollectionName.claim_of(name), consistent_read=True).target_id
    except DoesNotExist:
        return None


def check_agent_collection(user_id: str, config: dict[str, Any]) -> None:
    """An agent's (or a run's) config may name only one of the caller's own collections."""
    name = config.get("collection")
    if name is not None and find_id(user_id, name) is None:
        raise no_collection(name)


def no_collection(name: str) -> Invalid:
    return Invalid(
        f"You have no collection named {name!r}; create it first, or set 'config.collection' to null.",
        field="config.collection",
    )


def record_agent(transaction: TransactWrite, user_id: str, name: str | None, agent_id: str) -> None:
    """In the transaction of an agent's write: the claim of the collection it names records it,
    on condition the claim still exists (the collection is active). Adding it again is a no-op."""
    if name is not None:
        claim = CollectionName(user_id, CollectionName.claim_of(name))
        actions = [CollectionName.agents.add({agent_id})]
        transaction.update(claim, actions=actions, condition=CollectionName.target_id.exists())


def forget_agent(transaction: TransactWrite, user_id: str, name: str | None, agent_id: str) -> None:
    """In the transaction of an agent's delete, or its move to another collection: the claim of
    the collection it named stops recording it. A claim that does not record it (an agent written
    before claims recorded agents) is left alone."""
    if name is None:
        return
    try:
        claim = CollectionName.get(user_id, CollectionName.claim_of(name), consistent_read=True)
    except DoesNotExist:
        return
    if agent_id in (claim.agents or set()):
        actions = [CollectionName.agents.delete({agent_id})]
        transaction.update(claim, actions=actions, condition=CollectionName.agents.contains(agent_id))


def delete(user_id: str, collection_id: str) -> Collection:
    """Mark the collection deleting, free its name and queue its removal; refused while one of
    the caller's agents names it. A repeated delete queues the removal again (the indexer's
    removal is idempotent), so a client may retry one whose message could not be sent."""
    collection = get(user_id, collection_id)
    if collection.status == ACTIVE:
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


def _agents_naming(collection: Collection, claim: CollectionName) -> list[Agent]:
    """The caller's agents naming the collection: those its claim records (read consistently),
    and any the owner-index lists (agents written before claims recorded agents)."""
    recorded = []
    for agent_id in sorted(claim.agents or ()):
        try:
            recorded.append(Agent.get(agent_id, consistent_read=True))
        except DoesNotExist:
            continue
    listed = [a for a in Agent.by_owner.query(collection.user_id) if a.config.get("collection") == collection.name]
    return list({agent.agent_id: agent for agent in recorded + listed}.values())


def _documents_counted(collection: Collection) -> int:
    """Its documents still counted against the user's limit: all but those deleted one by one,
    which gave theirs back. Read after the collection is marked deleting, and consistently: no
    document is added or marked deleting once it is (documents.create and documents.delete
    both check that the collection is active in their transaction), so none is missed or
    given back twice."""
    return Document.count(
        collection.collection_id, filter_condition=Document.status != contract.DELETING, consistent_read=True
    )


def _mark_deleting(collection: Collection, attempts: int = 3) -> None:
    """Mark it deleting and free its name, refused (`in_use`) while an agent names it. The claim
    goes only if it still records no agent: an agent written after the check makes the write
    fail, and the check, run again, names it."""
    changed = Conflict(f"Collection {collection.collection_id} changed meanwhile; read it again.")
    for _ in range(attempts):
        try:
            claim = CollectionName.get(
                collection.user_id, CollectionName.claim_of(collection.name), consistent_read=True
            )
        except DoesNotExist:
            raise changed from None
        users = _agents_naming(collection, claim)
        if users:
            named = ", ".join(f"{agent.name!r} ({agent.agent_id})" for agent in users[:3])
            raise Conflict(
                f"Collection {collection.name!r} is used by {len(users)} agent(s): {named}; "
                "point them at another collection or null first.",
                contract.IN_USE,
            )
        stamp = now_iso()
        try:
            with conditional(changed), TransactWrite(connection=aws.dynamodb()) as transaction:
                transaction.update(
                    collection,
                    actions=[Collection.status.set(contract.DELETING), Collection.updated_at.set(stamp)],
                    condition=Collection.status == ACTIVE,
                )
                unnamed = CollectionName.agents.does_not_exist() | (size(CollectionName.agents) == 0)
                transaction.delete(claim, condition=(CollectionName.target_id == collection.collection_id) & unnamed)
        except Conflict:
            continue
        collection.status, collection.updated_at = contract.DELETING, stamp
        return
    raise changed
