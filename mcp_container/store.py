"""The index every runtime task and the indexer share: Chroma behind one small class.

A Chroma server (`chromadb.HttpClient`) when DYNAVERA_CHROMA_URL is set, else an embedded
`PersistentClient` at DYNAVERA_RAG_DB (tests and one-process tools: Chroma calls two processes
on one directory unsafe). A collection's index is named by `contract.chroma_collection_name`,
never by a user's string; a chunk's id is `{document_id}:{i}`, so writing it again changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import contract
from mcp_container.config import Settings, go_offline

log = logging.getLogger(__name__)

# Seconds a Chroma server call may take: the client's own default is no limit at all, and a
# server that stopped answering must turn into a 503, not a run that hangs. Connecting gets
# less, so /health answers within a load balancer's health-check timeout (5 s by default)
# even when the server's address drops packets.
SERVER_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 2.0
# Ids per `get`, `delete` or `upsert`: Chroma's request size stays bounded for a 20,000-chunk document.
ID_PAGE = 1000


class StoreUnreachable(ConnectionError):
    """The Chroma server cannot be reached; /execute answers 503 and the caller retries."""


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk, shaped as `output_data.sources[]` (DESIGN.md §3)."""

    source: str
    chunk_id: str
    score: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "chunk_id": self.chunk_id, "score": self.score, "text": self.text}


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as the index holds it: its text and its vector."""

    index: int
    text: str
    vector: list[float]


def chunk_id(document_id: str, index: int) -> str:
    return f"{document_id}:{index}"


class Store:
    """Chunks of documents in per-collection indexes. Vectors always come from our embedder."""

    def __init__(self, connect: Callable[[], Any], where: str) -> None:
        self._connect = connect
        self.where = where
        self._client: Any = None
        self._lock = threading.Lock()
        # Handles of collections seen to exist: looking one up costs a round trip to the server.
        # Only existence is remembered, never contents; a handle whose collection was dropped
        # is forgotten on the first NotFoundError.
        self._handles: dict[str, Any] = {}

    @classmethod
    def open(cls, settings: Settings) -> Store:
        """The server at `settings.chroma_url`, or the embedded directory `settings.rag_db`."""
        go_offline()
        if settings.chroma_url:
            return cls(lambda: _http_client(settings.chroma_url), settings.chroma_url)
        return cls(lambda: _persistent_client(settings.rag_db), str(settings.rag_db))

    def health(self) -> bool:
        try:
            with self._reaching():
                self._ensure().heartbeat()
        except StoreUnreachable:
            return False
        return True

    def search(self, collection_id: str, embedding: Sequence[float], top_k: int) -> list[Passage]:
        """The `top_k` chunks nearest `embedding`; none when nothing was indexed in the collection yet."""
        with self._reaching():
            collection = self._existing(collection_id)
            if collection is None:
                return []
            found = self._retrying(
                collection_id,
                lambda c: c.query(
                    query_embeddings=[list(embedding)],
                    n_results=top_k,
                    include=["documents", "metadatas", "distances"],
                ),
            )
        if found is None:
            return []
        return [
            Passage(source=str(meta["source"]), chunk_id=cid, score=round(1.0 - distance, 4), text=text)
            for cid, text, meta, distance in zip(
                found["ids"][0], found["documents"][0], found["metadatas"][0], found["distances"][0], strict=True
            )
        ]

    def upsert(
        self,
        collection_id: str,
        document_id: str,
        source: str,
        chunks: Sequence[tuple[int, str]],
        vectors: Sequence[Sequence[float]],
    ) -> None:
        """Write chunks `(index, text)` of a document with their vectors; again, the same ids change
        nothing. In pages of ID_PAGE: Chroma refuses a batch over its maximum (5,461 here), and a
        reused or rebuilt document may hold up to contract.MAX_DOCUMENT_CHUNKS."""
        if not chunks:
            return
        with self._reaching():
            collection = self._created(collection_id)
            for start in range(0, len(chunks), ID_PAGE):
                page = chunks[start : start + ID_PAGE]
                collection.upsert(
                    ids=[chunk_id(document_id, i) for i, _ in page],
                    documents=[text for _, text in page],
                    embeddings=[list(v) for v in vectors[start : start + ID_PAGE]],
                    metadatas=[{"document_id": document_id, "source": source, "chunk_index": i} for i, _ in page],
                )

    def stored(self, collection_id: str, document_id: str, indexes: Sequence[int]) -> dict[int, StoredChunk]:
        """Those of the document's chunks the index already holds (a redelivery embeds them no more)."""
        held: dict[int, StoredChunk] = {}
        with self._reaching():
            collection = self._existing(collection_id)
            if collection is None:
                return held
            for start in range(0, len(indexes), ID_PAGE):
                page = [chunk_id(document_id, i) for i in indexes[start : start + ID_PAGE]]
                got = collection.get(ids=page, include=["documents", "metadatas", "embeddings"])
                for text, meta, vector in zip(got["documents"], got["metadatas"], got["embeddings"], strict=True):
                    index = int(meta["chunk_index"])
                    held[index] = StoredChunk(index, text, [float(x) for x in vector])
        return held

    def delete_document(self, collection_id: str, document_id: str) -> None:
        with self._reaching():
            collection = self._existing(collection_id)
            if collection is not None:
                self._retrying(collection_id, lambda c: c.delete(where={"document_id": document_id}))

    def drop_collection(self, collection_id: str) -> None:
        from chromadb.errors import NotFoundError

        name = contract.chroma_collection_name(collection_id)
        with self._reaching():
            self._handles.pop(name, None)
            try:
                self._ensure().delete_collection(name)
            except NotFoundError:
                pass

    def count(self, collection_id: str, document_id: str | None = None) -> int:
        """Chunks in the collection, or of one document in it."""
        with self._reaching():
            collection = self._existing(collection_id)
            if collection is None:
                return 0
            if document_id is None:
                return int(collection.count())
            return len(collection.get(where={"document_id": document_id}, include=[])["ids"])

    def _ensure(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _existing(self, collection_id: str) -> Any:
        """The collection's handle, or None when it has no index yet; never cached as missing,
        so a collection created by the indexer after this process started is found at once."""
        from chromadb.errors import NotFoundError

        name = contract.chroma_collection_name(collection_id)
        if name not in self._handles:
            try:
                self._handles[name] = self._ensure().get_collection(name, embedding_function=None)
            except NotFoundError:
                return None
        return self._handles[name]

    def _created(self, collection_id: str) -> Any:
        name = contract.chroma_collection_name(collection_id)
        if name not in self._handles:
            self._handles[name] = self._ensure().get_or_create_collection(
                name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
            )
        return self._handles[name]

    def _retrying(self, collection_id: str, call: Callable[[Any], Any]) -> Any:
        """`call` on the collection's handle; once more on a fresh handle if another process
        dropped and re-created the collection since the handle was taken. None if it is gone."""
        from chromadb.errors import NotFoundError

        name = contract.chroma_collection_name(collection_id)
        try:
            return call(self._handles[name])
        except NotFoundError:
            self._handles.pop(name, None)
            collection = self._existing(collection_id)
            return None if collection is None else call(collection)

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        import httpx

        try:
            yield
        except (httpx.TransportError, httpx.HTTPStatusError) as error:
            with self._lock:
                self._client = None  # reconnect on the next call, once the server is back
                self._handles.clear()
            raise StoreUnreachable(f"the Chroma server at {self.where} cannot be reached: {error}") from error
        except ValueError as error:
            # How chromadb.HttpClient says, while connecting, that no server answers.
            if "Could not connect" not in str(error):
                raise
            raise StoreUnreachable(f"the Chroma server at {self.where} cannot be reached") from error


def _http_client(url: str) -> Any:
    import chromadb
    import httpx

    # chromadb.HttpClient talks to the server while it is built, with no timeout: ask first.
    httpx.get(f"{url.rstrip('/')}/api/v2/heartbeat", timeout=CONNECT_TIMEOUT_SECONDS).raise_for_status()
    parts = urlsplit(url)
    client = chromadb.HttpClient(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (443 if parts.scheme == "https" else 80),
        ssl=parts.scheme == "https",
        settings=chromadb.Settings(anonymized_telemetry=False),
    )
    # chromadb's HTTP session waits forever by default (chromadb/api/fastapi.py, timeout=None).
    client._server._session.timeout = httpx.Timeout(SERVER_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
    return client


def _persistent_client(path: Path) -> Any:
    import chromadb

    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chromadb.Settings(anonymized_telemetry=False))
