"""Build or update a ChromaDB collection from a folder of .md, .txt and .pdf files.

Incremental: a file whose content hash is already stored is skipped; a changed file has
its chunks replaced. `python -m mcp_container.ingest PATH --collection NAME [--db DIR]`.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mcp_container.chunking import chunk_text
from mcp_container.config import Settings, configure_logging
from mcp_container.embedder import Embedder
from mcp_container.rag import Chunk, Store

SUPPORTED_SUFFIXES = (".md", ".txt", ".pdf")
# Chunks embedded per call: large enough for sentence-transformers to sort them by length
# and pad little (near its own throughput), small enough to report progress often.
EMBED_GROUP = 512

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    unchanged: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    chunks_embedded: int = 0

    def summary(self) -> str:
        return (
            f"{len(self.updated)} files updated, {len(self.unchanged)} unchanged, "
            f"{self.chunks_embedded} chunks embedded"
        )


class Progress(Protocol):
    def update(self, n: int) -> object: ...

    def close(self) -> None: ...


class LoggedProgress:
    """Progress as plain log lines, for logs and pipes where a bar would be noise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0

    def update(self, n: int) -> None:
        self.done += n
        log.info("embedded %d/%d chunks", self.done, self.total)

    def close(self) -> None:
        return None


def progress_for(total: int) -> Progress:
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, unit="chunk", desc="embedding")
    return LoggedProgress(total)


def read_document(path: Path) -> str:
    if path.suffix.lower() == ".pdf":
        from pypdf import PdfReader

        return "\n\n".join(page.extract_text() or "" for page in PdfReader(path).pages)
    return path.read_text(encoding="utf-8", errors="replace")


def find_documents(root: Path) -> list[Path]:
    if root.is_file():
        return [root] if root.suffix.lower() in SUPPORTED_SUFFIXES else []
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)


class Ingestor:
    def __init__(
        self, store: Store, embedder: Embedder, progress: Callable[[int], Progress] = progress_for
    ) -> None:
        self.store = store
        self.embedder = embedder
        self._progress = progress

    def ingest(self, root: Path, collection: str) -> IngestReport:
        if not root.exists():
            raise FileNotFoundError(f"{root} does not exist")
        stored = self.store.file_hashes(collection)
        report = IngestReport()
        pending: dict[str, list[Chunk]] = {}
        for path in find_documents(root):
            source = path.name if root.is_file() else path.relative_to(root).as_posix()
            content_hash = hashlib.sha256(path.read_bytes()).hexdigest()
            if stored.get(source) == content_hash:
                report.unchanged.append(source)
                continue
            texts = chunk_text(read_document(path))
            pending[source] = [Chunk(source, i, text, content_hash) for i, text in enumerate(texts)]
            report.updated.append(source)

        chunks = [c for file_chunks in pending.values() for c in file_chunks]
        embeddings = self._embed([c.text for c in chunks])
        report.chunks_embedded = len(embeddings)
        start = 0
        for source, file_chunks in pending.items():
            self.store.replace_file(collection, source, file_chunks, embeddings[start : start + len(file_chunks)])
            start += len(file_chunks)
        return report

    def _embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        progress = self._progress(len(texts))
        embeddings: list[list[float]] = []
        try:
            for group in _groups(texts, EMBED_GROUP):
                embeddings.extend(self.embedder.embed(group))
                progress.update(len(group))
        finally:
            progress.close()
        return embeddings


def _groups(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ingest .md, .txt and .pdf files into a ChromaDB collection.")
    parser.add_argument("path", type=Path, help="a file or a folder, searched recursively")
    parser.add_argument("--collection", required=True, help="collection name (3-63 of a-z A-Z 0-9 . _ -)")
    parser.add_argument(
        "--db", type=Path, default=None, help="ChromaDB directory (default: $DYNAVERA_RAG_DB or build/rag_db)"
    )
    args = parser.parse_args(argv)
    configure_logging("%(message)s")

    from mcp_container.embedder import MiniLMEmbedder

    settings = Settings.from_env()
    store = Store(args.db or settings.rag_db)
    try:
        report = Ingestor(store, MiniLMEmbedder(settings.embedder_path)).ingest(args.path, args.collection)
    except (FileNotFoundError, ValueError) as error:
        log.error("ingest failed: %s", error)
        return 1
    log.info("collection %s in %s: %s", args.collection, store.path, report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
