"""PynamoDB models for every table of infra/data.yaml, and `conditional`, the one way a write
whose condition fails becomes a domain error.

Table names, region and endpoint come from Settings through `bind_tables`, called by
chalicelib.wiring.wire; nothing here knows whether it talks to AWS, LocalStack or moto.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.exceptions import DeleteError, PutError, TransactWriteError, UpdateError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.errors import Conflict, DynaveraError

if TYPE_CHECKING:
    from chalicelib.settings import Settings


@contextmanager
def conditional(refused: DynaveraError | None = None) -> Iterator[None]:
    """Around one conditional write (save, update, delete, or a transaction): a failed condition
    raises `refused`, a Conflict unless the caller names the domain error it means; any other
    failure goes up as it is."""
    try:
        yield
    except (PutError, UpdateError, DeleteError, TransactWriteError) as err:
        if not _condition_failed(err):
            raise
        raise (refused or Conflict("It changed meanwhile; read it again.")) from err


def _condition_failed(err: PutError | UpdateError | DeleteError | TransactWriteError) -> bool:
    if isinstance(err, TransactWriteError):
        reasons = err.cancellation_reasons
        return any(reason is not None and reason.code == "ConditionalCheckFailed" for reason in reasons)
    return err.cause_response_code == "ConditionalCheckFailedException"


class _Meta:
    # Filled in by bind_tables: a model used before chalicelib.wiring.wire has no table.
    table_name: str | None = None
    region: str | None = None
    host: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None


class KeysByUser(GlobalSecondaryIndex["ApiKey"]):
    class Meta:
        index_name = "user-index"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class ApiKey(Model):
    """An API key, by the sha256 of the key (the key itself is never stored); listed per user
    through user-index (user_id, created_at). `key_id` names it to its owner, `prefix` is its
    first characters. Keys made before they had names get an id when first listed."""

    class Meta(_Meta):
        pass

    key_hash = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    created_at = UnicodeAttribute()
    key_id = UnicodeAttribute(null=True)
    name = UnicodeAttribute(null=True)
    prefix = UnicodeAttribute(null=True)
    last_used_at = UnicodeAttribute(null=True)
    by_user = KeysByUser()

    def to_api(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "name": self.name or "",
            "prefix": self.prefix,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
        }


class Usage(Model):
    """What a user holds against its counted limits (chalicelib.limits): user_id → a count
    per limit, each changed only by a conditional ADD (chalicelib.usage)."""

    class Meta(_Meta):
        pass

    user_id = UnicodeAttribute(hash_key=True)
    runs_in_flight = NumberAttribute(null=True)
    agents = NumberAttribute(null=True)
    collections = NumberAttribute(null=True)
    documents = NumberAttribute(null=True)


class AgentsByOwner(GlobalSecondaryIndex["Agent"]):
    class Meta:
        index_name = "owner-index"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class Agent(Model):
    """An agent: agent_id; listed per owner through owner-index (user_id, created_at)."""

    class Meta(_Meta):
        pass

    agent_id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    name = UnicodeAttribute()
    description = UnicodeAttribute(default="")
    status = UnicodeAttribute(default="active")
    config = JSONAttribute(default=dict)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    by_owner = AgentsByOwner()

    def to_api(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "config": self.config,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class ExecutionsByAgent(GlobalSecondaryIndex["Execution"]):
    class Meta:
        index_name = "agent-index"
        projection = AllProjection()

    agent_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class ExecutionsByUser(GlobalSecondaryIndex["Execution"]):
    """The caller's runs across agents, newest first (GET /executions)."""

    class Meta:
        index_name = "user-index"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class ExecutionsByStatus(GlobalSecondaryIndex["Execution"]):
    """Lets the sweeper find executions left running; keys only."""

    class Meta:
        index_name = "status-index"
        projection = KeysOnlyProjection()

    status = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class Execution(Model):
    """An execution: execution_id; listed newest first per agent (agent-index) and per user
    (user-index). `query_folded` is the query case-folded, what `GET /executions?q=` searches."""

    class Meta(_Meta):
        pass

    execution_id = UnicodeAttribute(hash_key=True)
    agent_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    status = UnicodeAttribute()
    input_data = JSONAttribute()
    config = JSONAttribute(default=dict)
    query_folded = UnicodeAttribute(null=True)
    output_data = JSONAttribute(null=True)
    error_message = UnicodeAttribute(null=True)
    stop_requested = BooleanAttribute(default=False)
    created_at = UnicodeAttribute()
    started_at = UnicodeAttribute(null=True)
    completed_at = UnicodeAttribute(null=True)
    by_agent = ExecutionsByAgent()
    by_user = ExecutionsByUser()
    by_status = ExecutionsByStatus()

    def to_api(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "agent_id": self.agent_id,
            "status": self.status,
            "input_data": self.input_data,
            "config": self.config,
            "output_data": self.output_data,
            "error_message": self.error_message,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
        }


class Event(Model):
    """One event of an execution: (execution_id, seq), seq 1, 2, 3 … with no gaps."""

    class Meta(_Meta):
        pass

    execution_id = UnicodeAttribute(hash_key=True)
    seq = NumberAttribute(range_key=True)
    event_type = UnicodeAttribute()
    content = JSONAttribute(default=dict)
    timestamp = UnicodeAttribute()

    def to_api(self) -> dict[str, Any]:
        return {
            "seq": int(self.seq),
            "event_type": self.event_type,
            "content": self.content,
            "timestamp": self.timestamp,
        }


class ConnectionsByUser(GlobalSecondaryIndex["Connection"]):
    """A user's connections: counted against the connections limit, closed with a revoked key."""

    class Meta:
        index_name = "user-index"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    connection_id = UnicodeAttribute(range_key=True)


class Connection(Model):
    """A live WebSocket connection: connection_id → its user, the key it opened with (the
    key's hash, re-checked on every frame) and its management endpoint."""

    class Meta(_Meta):
        pass

    connection_id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    key_hash = UnicodeAttribute(null=True)
    endpoint = UnicodeAttribute()
    connected_at = UnicodeAttribute()
    expires_at = TTLAttribute()
    by_user = ConnectionsByUser()


class SubscriptionsByConnection(GlobalSecondaryIndex["Subscription"]):
    class Meta:
        index_name = "connection-index"
        projection = KeysOnlyProjection()

    connection_id = UnicodeAttribute(hash_key=True)
    execution_id = UnicodeAttribute(range_key=True)


class Subscription(Model):
    """A connection following an execution: (execution_id, connection_id), from seq `after` on.

    `token` is new for every subscribe, so the run's sender can tell a resubscription (which
    starts again from its own `after`) from the subscription it already serves.
    """

    class Meta(_Meta):
        pass

    execution_id = UnicodeAttribute(hash_key=True)
    connection_id = UnicodeAttribute(range_key=True)
    endpoint = UnicodeAttribute()
    after = NumberAttribute(default=0)
    token = UnicodeAttribute(default="")
    expires_at = TTLAttribute()
    by_connection = SubscriptionsByConnection()


class IdempotencyRecord(Model):
    """An Idempotency-Key seen from a user: "user_id#key" → the execution it started."""

    class Meta(_Meta):
        pass

    idempotency_id = UnicodeAttribute(hash_key=True)
    execution_id = UnicodeAttribute()
    agent_id = UnicodeAttribute()
    expires_at = TTLAttribute()


class CollectionsByOwner(GlobalSecondaryIndex["Collection"]):
    class Meta:
        index_name = "owner-index"
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class Collection(Model):
    """A user's collection of documents: (user_id, collection_id); listed through owner-index."""

    class Meta(_Meta):
        pass

    user_id = UnicodeAttribute(hash_key=True)
    collection_id = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    description = UnicodeAttribute(default="")
    status = UnicodeAttribute(default="active")
    document_count = NumberAttribute(default=0)
    chunk_count = NumberAttribute(default=0)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    by_owner = CollectionsByOwner()

    def to_api(self) -> dict[str, Any]:
        return {
            "collection_id": self.collection_id,
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "document_count": int(self.document_count),
            "chunk_count": int(self.chunk_count),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class CollectionName(Model):
    """A collection's name claim, in the collections table beside it: (user_id, "name#" + name)
    → collection_id. Its conditional put keeps names unique per user, and it resolves an
    agent's collection name to the id in one read, and it records the agents naming the
    collection. It has no created_at, so owner-index never lists it."""

    class Meta(_Meta):
        pass

    user_id = UnicodeAttribute(hash_key=True)
    claim = UnicodeAttribute(range_key=True, attr_name="collection_id")
    target_id = UnicodeAttribute()
    # The agents naming the collection, each added or removed in the transaction of the agent's
    # own write: a delete conditional on none is exact, where the owner-index query is not.
    agents = UnicodeSetAttribute(null=True)

    @staticmethod
    def claim_of(name: str) -> str:
        return f"name#{name}"


class DocumentsByCollection(GlobalSecondaryIndex["Document"]):
    class Meta:
        index_name = "collection-index"
        projection = AllProjection()

    collection_id = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class DocumentsByStatus(GlobalSecondaryIndex["Document"]):
    """Lets the sweeper find documents left waiting or stuck mid-indexing; keys only."""

    class Meta:
        index_name = "status-index"
        projection = KeysOnlyProjection()

    status = UnicodeAttribute(hash_key=True)
    updated_at = UnicodeAttribute(range_key=True)


class Document(Model):
    """A document of a collection: (collection_id, document_id). The API writes it
    awaiting_upload; the indexer moves it on and keeps updated_at current as it goes."""

    class Meta(_Meta):
        pass

    collection_id = UnicodeAttribute(hash_key=True)
    document_id = UnicodeAttribute(range_key=True)
    user_id = UnicodeAttribute()
    filename = UnicodeAttribute()
    size = NumberAttribute()
    sha256 = UnicodeAttribute(null=True)
    status = UnicodeAttribute()
    chunks_total = NumberAttribute(default=0)
    chunks_done = NumberAttribute(default=0)
    error_code = UnicodeAttribute(null=True)
    error_message = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    indexed_at = UnicodeAttribute(null=True)
    by_collection = DocumentsByCollection()
    by_status = DocumentsByStatus()

    def to_api(self) -> dict[str, Any]:
        error = {"code": self.error_code, "message": self.error_message} if self.error_code else None
        return {
            "document_id": self.document_id,
            "collection_id": self.collection_id,
            "filename": self.filename,
            "size": int(self.size),
            "sha256": self.sha256,
            "status": self.status,
            "chunks_total": int(self.chunks_total),
            "chunks_done": int(self.chunks_done),
            "error": error,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "indexed_at": self.indexed_at,
        }


# Each model's table, by the Settings field that names it.
TABLES: dict[type[Model], str] = {
    ApiKey: "api_keys_table",
    Agent: "agents_table",
    Execution: "executions_table",
    Event: "events_table",
    Connection: "connections_table",
    Subscription: "subscriptions_table",
    IdempotencyRecord: "idempotency_table",
    Usage: "usage_table",
    Collection: "collections_table",
    Document: "documents_table",
}
# Models that keep their items in another model's table.
SHARED_TABLES: dict[type[Model], str] = {CollectionName: "collections_table"}


def bind_tables(settings: Settings) -> None:
    """Point every model at its table of this stage. PynamoDB builds a model's connection anew
    when its table name changes, so binding another stage takes effect at the next call."""
    for model, field in {**TABLES, **SHARED_TABLES}.items():
        model.Meta.table_name = getattr(settings, field)
        model.Meta.region = settings.region
        model.Meta.host = settings.aws_endpoint_url
        model.Meta.aws_access_key_id, model.Meta.aws_secret_access_key = settings.local_credentials or (None, None)
