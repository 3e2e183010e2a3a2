"""The runtime's benchmarks (DESIGN.md §10), each figure measured in this one run.

    .venv/bin/python bench/runtime_bench.py [--runs 3]

(Indexing and retrieval through the Chroma server: bench/store_bench.py.)

- /execute: wall time over HTTP ÷ the same retrieval + generation in-process, same tokens
  (goal ≤ 1.05);
- start: seconds from starting `python -m mcp_container` to /health 200 (goal < 10).
"""

from __future__ import annotations

import argparse
import json
import os
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

from local.chroma import start_chroma
from local.stack import free_port
from mcp_container.config import Settings
from mcp_container.engine import AskConfig, Engine
from mcp_container.execution import parse_config

CORPUS = ROOT / "mcp_container" / "corpus"
RUNTIME_SECRET = secrets.token_urlsafe(32)
DEMO_COLLECTION_ID = "0f0f0f0f-0000-4000-8000-00000000f415"
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
    passages = engine.retrieve(query, config.collection_id, config.top_k)
    tokens = list(engine.generate(query, passages, config))
    return time.perf_counter() - started, tokens


def bench_execute(workdir: Path, settings: Settings, runs: int) -> dict[str, float]:
    chroma = start_chroma(workdir / "chroma")
    env = {
        **os.environ,
        "DYNAVERA_CHROMA_URL": chroma.url,
        "DYNAVERA_RUNTIME_HOST": "127.0.0.1",
        "DYNAVERA_RUNTIME_PORT": str(free_port()),
        "DYNAVERA_RUNTIME_SECRET": RUNTIME_SECRET,
        "HF_HUB_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
    }
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mcp_container.indexer",
            "index-folder",
            str(CORPUS),
            "--collection-id",
            DEMO_COLLECTION_ID,
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    process, url, start_s = start_runtime(env)
    try:
        engine = Engine(Settings(**{**settings.__dict__, "chroma_url": chroma.url}))
        engine.load()
        config = {"collection_id": DEMO_COLLECTION_ID, "top_k": 3, "max_tokens": 64, "temperature": 0}
        ask = parse_config(config)
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
        chroma.stop()
    return {
        "start_to_healthy_s": start_s,
        "execute_s": statistics.median(http_s),
        "in_process_s": statistics.median(local_s),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    settings = Settings.from_env()
    with tempfile.TemporaryDirectory(prefix="runtime-bench-") as tmp:
        workdir = Path(tmp)
        execute = bench_execute(workdir, settings, args.runs)
    execute_ratio = execute["execute_s"] / execute["in_process_s"]
    lines = [
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
