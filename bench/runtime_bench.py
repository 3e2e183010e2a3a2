"""The runtime's benchmarks (DESIGN.md §10), each figure measured in this one run.

    .venv/bin/python bench/runtime_bench.py [--chunks 1500 | --full] [--runs 3]

- retrieval: median and p95 of Engine.retrieve (query embedding + ChromaDB top-5) on a
  collection of --chunks chunks (1,500 by default so the bench takes minutes; --full gives
  DESIGN's 10,000, about eight minutes more here);
- ingestion: chunks/s of the ingest command's code ÷ chunks/s of a bare
  SentenceTransformer.encode on the same chunk texts (goal ≥ 0.8);
- /execute: wall time over HTTP ÷ the same retrieval + generation in-process, same tokens
  (goal ≤ 1.05);
- start: seconds from starting `python -m mcp_container` to /health 200 (goal < 10).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local.stack import free_port
from mcp_container.config import Settings, go_offline
from mcp_container.engine import AskConfig, Engine
from mcp_container.ingest import Ingestor, LoggedProgress
from mcp_container.rag import Store

CORPUS = ROOT / "mcp_container" / "corpus"
RUNTIME_SECRET = secrets.token_urlsafe(32)
QUERIES = [
    "What is fNIRS?",
    "How does the modified Beer-Lambert law handle scattering?",
    "Why is HbR more specific to the brain than HbO?",
    "How far apart are sources and detectors?",
    "How are motion artefacts corrected?",
    "What do short-separation channels measure?",
    "How does fNIRS compare with fMRI?",
    "Which applications use fNIRS with infants?",
]


class QuietProgress(LoggedProgress):
    def update(self, n: int) -> None:
        self.done += n


def synthetic_corpus(folder: Path, chunks: int) -> None:
    """Documents recombined from the demo corpus's sentences, about `chunks` chunks in all."""
    sentences = [
        s for p in sorted(CORPUS.glob("*.md")) for s in p.read_text().replace("\n", " ").split(". ") if len(s) > 40
    ]
    rng = random.Random(7)
    # Paragraphs of five sentences, about 500 characters: each fills most of a chunk.
    per_doc = 10
    for n in range(round(chunks / per_doc / 1.4)):  # overlap makes ~1.4 chunks of every paragraph
        text = "\n\n".join(". ".join(rng.sample(sentences, 5)) + "." for _ in range(per_doc))
        (folder / f"doc{n:05d}.md").write_text(text)


def bench_ingestion_and_retrieval(workdir: Path, chunks: int, settings: Settings) -> dict[str, float]:
    docs = workdir / "docs"
    docs.mkdir()
    synthetic_corpus(docs, chunks)
    engine = Engine(Settings(**{**settings.__dict__, "rag_db": workdir / "bench_db"}))
    engine.embedder.load()
    engine.store = Store(workdir / "bench_db")

    started = time.perf_counter()
    report = Ingestor(engine.store, engine.embedder, QuietProgress).ingest(docs, "bench")
    ingest_s = time.perf_counter() - started
    stored = engine.store.count("bench")

    texts = engine.store._collection("bench").get(include=["documents"])["documents"]
    go_offline()
    from sentence_transformers import SentenceTransformer

    from mcp_container.config import minilm_folder

    model = SentenceTransformer(str(minilm_folder()), device="cpu")
    model.encode(texts[:64])  # warm-up, as the ingest side's model is already warm
    started = time.perf_counter()
    model.encode(texts, batch_size=64, normalize_embeddings=True)
    encode_s = time.perf_counter() - started

    for query in QUERIES:  # warm-up
        engine.retrieve(query, "bench", 5)
    latencies = []
    for i in range(200):
        started = time.perf_counter()
        engine.retrieve(QUERIES[i % len(QUERIES)] + f" ({i})", "bench", 5)
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return {
        "chunks": stored,
        "ingest_chunks_per_s": report.chunks_embedded / ingest_s,
        "encode_chunks_per_s": len(texts) / encode_s,
        "retrieval_median_ms": statistics.median(latencies),
        "retrieval_p95_ms": latencies[int(len(latencies) * 0.95) - 1],
    }


def start_runtime(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, float]:
    url = f"http://127.0.0.1:{env['DYNAVERA_RUNTIME_PORT']}"
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_container"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = started + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url, time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    process.kill()
    raise TimeoutError("runtime not healthy within 60 s")


def execute_over_http(url: str, query: str, config: dict[str, object]) -> tuple[float, list[str]]:
    started = time.perf_counter()
    tokens = []
    headers = {"Authorization": f"Bearer {RUNTIME_SECRET}"}
    body = {"query": query, "config": config}
    with httpx.stream("POST", f"{url}/execute", json=body, headers=headers, timeout=300) as answer:
        for line in filter(str.strip, answer.iter_lines()):
            event = json.loads(line)
            if event["type"] == "token":
                tokens.append(event["text"])
            elif event["type"] != "progress":
                assert event["type"] == "result", event
    return time.perf_counter() - started, tokens


def execute_in_process(engine: Engine, query: str, config: AskConfig) -> tuple[float, list[str]]:
    started = time.perf_counter()
    passages = engine.retrieve(query, config.collection, config.top_k)
    tokens = list(engine.generate(query, passages, config))
    return time.perf_counter() - started, tokens


def bench_execute(workdir: Path, settings: Settings, runs: int) -> dict[str, float]:
    rag_db = workdir / "demo_db"
    subprocess.run(
        [sys.executable, "-m", "mcp_container.ingest", str(CORPUS), "--collection", "fnirs", "--db", str(rag_db)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    env = {
        **os.environ,
        "DYNAVERA_RAG_DB": str(rag_db),
        "DYNAVERA_RUNTIME_HOST": "127.0.0.1",
        "DYNAVERA_RUNTIME_PORT": str(free_port()),
        "DYNAVERA_RUNTIME_SECRET": RUNTIME_SECRET,
        "HF_HUB_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
    }
    process, url, start_s = start_runtime(env)
    try:
        engine = Engine(Settings(**{**settings.__dict__, "rag_db": rag_db}))
        engine.load()
        config = {"collection": "fnirs", "top_k": 3, "max_tokens": 64, "temperature": 0}
        ask = AskConfig(**config)
        http_s, local_s = [], []
        for i in range(runs):
            query = QUERIES[i % len(QUERIES)]
            took, over_http = execute_over_http(url, query, config)
            http_s.append(took)
            took, in_process = execute_in_process(engine, query, ask)
            local_s.append(took)
            assert over_http == in_process, f"different tokens for {query!r}"
    finally:
        process.terminate()
        process.wait()
    return {
        "start_to_healthy_s": start_s,
        "execute_s": statistics.median(http_s),
        "in_process_s": statistics.median(local_s),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1_500)
    parser.add_argument(
        "--full", action="store_const", const=10_000, dest="chunks", help="10,000 chunks, as DESIGN §10 says"
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    settings = Settings.from_env()
    with tempfile.TemporaryDirectory(prefix="runtime-bench-") as tmp:
        workdir = Path(tmp)
        execute = bench_execute(workdir, settings, args.runs)
        store = bench_ingestion_and_retrieval(workdir, args.chunks, settings)
    ingest_ratio = store["ingest_chunks_per_s"] / store["encode_chunks_per_s"]
    execute_ratio = execute["execute_s"] / execute["in_process_s"]
    lines = [
        (
            f"retrieval on {store['chunks']:,} chunks: median {store['retrieval_median_ms']:.1f} ms, "
            f"p95 {store['retrieval_p95_ms']:.1f} ms (goal: median < 10 ms)"
        ),
        (
            f"ingestion: {store['ingest_chunks_per_s']:.0f} chunks/s vs SentenceTransformer.encode "
            f"{store['encode_chunks_per_s']:.0f} chunks/s = {ingest_ratio:.2f} (goal >= 0.8)"
        ),
        (
            f"/execute {execute['execute_s']:.2f} s vs in-process {execute['in_process_s']:.2f} s, same tokens "
            f"= {execute_ratio:.3f} (goal <= 1.05)"
        ),
        f"start to healthy: {execute['start_to_healthy_s']:.2f} s (goal < 10 s)",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
