"""Ingestion: chunking, incremental updates, and the command on the real embedder."""

from __future__ import annotations

import hashlib
import itertools
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from mcp_container.chunking import chunk_text
from mcp_container.ingest import Ingestor
from mcp_container.rag import Store

ROOT = Path(__file__).resolve().parents[2]


class CountingEmbedder:
    """Deterministic vectors from a hash, counting what it is asked to embed."""

    name = "counting"

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.embedded.extend(texts)
        return [[b / 255 for b in hashlib.sha256(t.encode()).digest()[:8]] for t in texts]


class NoProgress:
    def __init__(self, _total: int) -> None:
        pass

    def update(self, _n: int) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# A\n\n" + " ".join(f"Alpha sentence {i}." for i in range(80)))
    (folder / "sub" / "b.txt").write_text("Beta paragraph one.\n\nBeta paragraph two.")
    (folder / "ignored.csv").write_text("not,a,document")
    return folder


def ids_by_source(store: Store, collection: str) -> dict[str, set[str]]:
    stored = store._collection(collection).get(include=["metadatas"])
    result: dict[str, set[str]] = {}
    for chunk_id, meta in zip(stored["ids"], stored["metadatas"], strict=True):
        result.setdefault(meta["source"], set()).add(chunk_id)
    return result


def test_chunks_respect_the_size_and_overlap_on_sentence_boundaries() -> None:
    text = " ".join(f"Sentence number {i} says one thing." for i in range(60))
    chunks = chunk_text(text, max_chars=200, overlap_chars=70)
    assert len(chunks) > 5
    assert all(len(c) <= 200 for c in chunks)
    assert all(c.endswith(".") for c in chunks)
    for before, after in itertools.pairwise(chunks):
        first_sentence = after.split(". ")[0] + "."
        assert first_sentence in before  # each chunk opens with the previous one's last sentence


def test_paragraphs_stay_whole_and_overlong_words_are_cut() -> None:
    chunks = chunk_text("First paragraph.\n\nSecond paragraph.\n\n" + "x" * 450, max_chars=200, overlap_chars=0)
    assert chunks[0] == "First paragraph. Second paragraph."
    assert all(len(c) <= 200 for c in chunks)
    assert "".join(chunks[1:]) == "x" * 450


def test_ingest_twice_embeds_nothing_the_second_time(docs: Path, tmp_path: Path) -> None:
    store, embedder = Store(tmp_path / "db"), CountingEmbedder()
    first = Ingestor(store, embedder, NoProgress).ingest(docs, "docs")
    assert sorted(first.updated) == ["a.md", "sub/b.txt"] and first.chunks_embedded == len(embedder.embedded)
    embedder.embedded.clear()
    second = Ingestor(store, embedder, NoProgress).ingest(docs, "docs")
    assert second.chunks_embedded == 0 and embedder.embedded == []
    assert sorted(second.unchanged) == ["a.md", "sub/b.txt"]


def test_a_changed_file_has_only_its_chunks_replaced(docs: Path, tmp_path: Path) -> None:
    store, embedder = Store(tmp_path / "db"), CountingEmbedder()
    Ingestor(store, embedder, NoProgress).ingest(docs, "docs")
    before = ids_by_source(store, "docs")
    assert len(before["a.md"]) > 1
    (docs / "sub" / "b.txt").write_text("Beta, rewritten.")
    embedder.embedded.clear()

    report = Ingestor(store, embedder, NoProgress).ingest(docs, "docs")

    assert report.updated == ["sub/b.txt"] and embedder.embedded == ["Beta, rewritten."]
    after = ids_by_source(store, "docs")
    assert after["a.md"] == before["a.md"]
    assert after["sub/b.txt"] == {"sub/b.txt#0"}
    stored = store._collection("docs").get(ids=["sub/b.txt#0"], include=["documents"])
    assert stored["documents"] == ["Beta, rewritten."]


def test_ingest_command_on_the_real_embedder_skips_an_unchanged_corpus(runtime: Any) -> None:
    done = subprocess.run(
        [
            ".venv/bin/python",
            "-m",
            "mcp_container.ingest",
            "mcp_container/corpus",
            "--collection",
            "fnirs",
            "--db",
            str(runtime.rag_db),
        ],
        cwd=ROOT,
        env=runtime.env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "0 files updated" in done.stderr and "0 chunks embedded" in done.stderr
