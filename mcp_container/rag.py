"""The RAG store: ChromaDB collections of embedded chunks, searched by query embedding."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import contract
from mcp_container.config import go_offline

log = logging.getLogger(__name__)

# The names an agent may give (the contract's, within ChromaDB's own rule), checked here to give
# a message that says what to do.
_COLLECTION_NAME = re.compile(contract.COLLECTION_PATTERN)


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
class Chunk:
    """A piece of a source file, ready to store."""

    source: str
    index: int
    text: str
    content_hash: str

    @property
    def chunk_id(self) -> str:
        return f"{self.source}#{self.index}"


class UnknownCollection(LookupError):
    def __init__(self, name: str, available: Sequence[str]) -> None:
        listed = ", ".join(sorted(available)) or "none"
        super().__init__(
            f"collection {name!r} does not exist (available: {listed}); "
            f"create it with `./dynavera ingest PATH --collection {name}`"
        )
        self.name = name


class Store:
    """A ChromaDB persistent directory. Embeddings always come from our embedder, never Chroma's."""

    def __init__(self, path: Path) -> None:
        go_offline()
        import chromadb

        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._client = chromadb.PersistentClient(
            path=str(path), settings=chromadb.Settings(anonymized_telemetry=False)
        )
        # Collection handles, kept: looking one up costs ~0.5 ms of a ~10 ms retrieval budget.
        self._handles: dict[str, Any] = {}

    def collection_names(self) -> list[str]:
        return sorted(c.name for c in self._client.list_collections())

    def search(self, collection: str, embedding: Sequence[float], top_k: int) -> list[Passage]:
        found = self._existing(collection).query(
            query_embeddings=[list(embedding)], n_results=top_k, include=["documents", "metadatas", "distances"]
        )
        return [
            Passage(source=str(meta["source"]), chunk_id=chunk_id, score=round(1.0 - distance, 4), text=text)
            for chunk_id, text, meta, distance in zip(
                found["ids"][0], found["documents"][0], found["metadatas"][0], found["distances"][0], strict=True
            )
        ]

    def file_hashes(self, collection: str) -> dict[str, str]:
        """The content hash stored for each source file in the collection."""
        stored = self._collection(collection).get(include=["metadatas"])
        return {str(m["source"]): str(m["content_hash"]) for m in stored["metadatas"]}

    def replace_file(
        self, collection: str, source: str, chunks: Sequence[Chunk], embeddings: Sequence[Sequence[float]]
    ) -> None:
        target = self._collection(collection)
        target.delete(where={"source": source})
        if chunks:
            target.add(
                ids=[c.chunk_id for c in chunks],
                documents=[c.text for c in chunks],
                embeddings=[list(e) for e in embeddings],
                metadatas=[
                    {"source": c.source, "chunk_index": c.index, "content_hash": c.content_hash} for c in chunks
                ],
            )

    def count(self, collection: str) -> int:
        return self._existing(collection).count()

    def _collection(self, name: str) -> Any:
        if not _COLLECTION_NAME.fullmatch(name):
            raise ValueError(
                f"invalid collection name {name!r}: use 3-63 of a-z A-Z 0-9 . _ -, "
                "starting and ending with a letter or digit"
            )
        return self._client.get_or_create_collection(
            name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )

    def _existing(self, name: str) -> Any:
        from chromadb.errors import NotFoundError

        if not _COLLECTION_NAME.fullmatch(name):
            raise UnknownCollection(name, self.collection_names())
        if name not in self._handles:
            try:
                self._handles[name] = self._client.get_collection(name, embedding_function=None)
            except NotFoundError:
                raise UnknownCollection(name, self.collection_names()) from None
        return self._handles[name]
