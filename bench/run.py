"""Dynavera's benchmarks (DESIGN §10): each figure a ratio or a delta measured in this one run.

    .venv/bin/python bench/run.py [--full]   (or: make bench [FULL=1], ./dynavera bench)

--full runs the runtime's retrieval and ingestion figures on 10,000 chunks instead of 1,500.

Needs the prepared model (make model); starts its own stack on a stage of its own, with a Chroma
server and an indexer, reusing the AWS endpoint on 127.0.0.1:4566 (or $AWS_ENDPOINT_URL) or
starting moto there, and uploads the shipped corpus into the bench user's `fnirs` collection
through the API, as `make run` does. Besides the load figures: another user's first token while one user
holds a backlog of runs (the run queue's fair share).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.taps import Tap
from local import endpoint
from local.corpus import upload_corpus
from local.stack import Stack, free_port

QUERY = "Explain in detail how fNIRS measures brain activity, and what limits it."
CONFIG = {"collection": "fnirs", "top_k": 4, "max_tokens": 200, "temperature": 0}
RUNS = 5
BACKLOG = 50
LOAD_CONFIG = {"collection": "fnirs", "top_k": 4, "max_tokens": 24, "temperature": 0}
LOAD_QUERIES = [
    f"{q} ({n})" for n, q in enumerate(["What is fNIRS?", "What limits fNIRS?", "What is HbO?", "What is HbR?"] * 4)
]


def import_app_ms() -> list[float]:
    probe = "import time; t = time.perf_counter(); import app; print((time.perf_counter() - t) * 1000)"
    return [
        float(
            subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        )
        for _ in range(7)
    ]


def median_ms(call: Any, n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = call()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code < 300, response.text
    return statistics.median(times)


def ws_run(stack: Stack, key: str, agent_id: str, query: str, stop_after_first_token: bool = False) -> dict[str, Any]:
    """One run seen from a WebSocket client: wall time, first token time, when each token frame
    came, the answer."""
    with connect(f"{stack.ws_url}?token={key}", max_size=2**20) as ws:
        started = time.monotonic()
        ws.send(json.dumps({"action": "start_agent", "agent_id": agent_id, "input_data": {"query": query}}))
        first_token = stop_sent = None
        execution_id = None
        token_frames: list[float] = []
        while True:
            frame = json.loads(ws.recv(timeout=300))
            if frame["type"] == "execution_started":
                execution_id = frame["execution_id"]
            elif frame.get("event_type") == "token":
                token_frames.append(time.monotonic())
            if frame.get("event_type") == "token" and first_token is None:
                first_token = time.monotonic()
                if stop_after_first_token:
                    stop_sent = time.monotonic()
                    ws.send(json.dumps({"action": "stop_agent", "execution_id": execution_id}))
            elif frame["type"] in ("execution_completed", "execution_error", "execution_stopped"):
                ended = time.monotonic()
                return {
                    "started": started,
                    "wall": ended - started,
                    "first_token": first_token,
                    "to_first_token": first_token - started if first_token else None,
                    "token_frames": token_frames,
                    "stop_latency": ended - stop_sent if stop_sent else None,
                    "frame": frame,
                    "execution_id": execution_id,
                }


def load_run(stack: Stack, key: str, agent_id: str, queries: list[str]) -> list[dict[str, Any]]:
    """One client per query, all starting at once; each run's start, first token and end."""
    barrier = threading.Barrier(len(queries))

    def client(index: int) -> dict[str, Any]:
        ws = sockets.enter_context(connect(f"{stack.ws_url}?token={key}", max_size=2**20))
        barrier.wait()
        run: dict[str, Any] = {"start": time.monotonic(), "first_token": None}
        ws.send(json.dumps({"action": "start_agent", "agent_id": agent_id, "input_data": {"query": queries[index]}}))
        while True:
            frame = json.loads(ws.recv(timeout=600))
            if frame["type"] == "execution_started":
                run["execution_id"] = frame["execution_id"]
            elif frame.get("event_type") == "token" and run["first_token"] is None:
                run["first_token"] = time.monotonic()
            elif frame["type"] in ("execution_completed", "execution_error", "execution_stopped"):
                run.update(end=time.monotonic(), frame=frame)
                return run

    with ExitStack() as sockets, ThreadPoolExecutor(len(queries)) as pool:
        return list(pool.map(client, range(len(queries))))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def bench_load(
    stack: Stack, key: str, agent_id: str, engine: Any, store: dict[str, str], runtime_tap: Tap
) -> dict[str, Any]:
    from mcp_container.execution import parse_config

    ask_config = parse_config({**LOAD_CONFIG, **store})
    started = time.monotonic()
    for query in LOAD_QUERIES:
        passages = engine.retrieve(query, ask_config.collection_id, ask_config.top_k)
        "".join(engine.generate(query, passages, ask_config))
    back_to_back = time.monotonic() - started
    runtime_tap.reset()
    runs = load_run(stack, key, agent_id, LOAD_QUERIES)
    wall = max(r["end"] for r in runs) - min(r["start"] for r in runs)
    assert all(r["frame"]["type"] == "execution_completed" for r in runs), [r["frame"] for r in runs]
    to_first = [(r["first_token"] - r["start"]) * 1000 for r in runs]
    behind = [(r["first_token"] - runtime_tap.first_tokens[r["execution_id"]]) * 1000 for r in runs]
    return {
        f"{len(runs)} concurrent runs of {LOAD_CONFIG['max_tokens']} tokens, wall (s)": round(wall, 2),
        "same requests back to back in-process (s)": round(back_to_back, 2),
        "throughput ratio under load (goal <= 1.25)": round(wall / back_to_back, 3),
        "under load, start to first token at the client (ms, p50 / p95)": (
            round(percentile(to_first, 0.5)),
            round(percentile(to_first, 0.95)),
        ),
        "under load, first token: client minus runtime (ms, p50 / p95)": (
            round(percentile(behind, 0.5), 1),
            round(percentile(behind, 0.95), 1),
        ),
    }


def in_process_run(engine: Any, ask_config: Any) -> tuple[float, float, str]:
    started = time.monotonic()
    passages = engine.retrieve(QUERY, ask_config.collection_id, ask_config.top_k)
    generating = time.monotonic()
    answer = "".join(engine.generate(QUERY, passages, ask_config))
    ended = time.monotonic()
    return ended - started, ended - generating, answer


def bench_rest(api: httpx.Client, agent_id: str) -> dict[str, Any]:
    scratch = api.post("/agents", json={"name": "scratch"}).json()["agent_id"]
    started: list[str] = []

    def start() -> httpx.Response:
        response = api.post(f"/agents/{scratch}/executions", json={"input_data": {"query": "x"}})
        started.append(response.json()["execution_id"])
        return response

    report = {
        "GET /agents/{id} via gateway (ms, median of 50)": round(
            median_ms(lambda: api.get(f"/agents/{agent_id}"), 50), 1
        ),
        "POST /agents/{id}/executions via gateway (ms, median of 50)": round(median_ms(start, 50), 1),
    }
    # Never run: stopped, so they hold none of the user's runs in flight.
    for execution_id in started:
        api.post(f"/executions/{execution_id}/stop")
    return report


def bench_fairness(
    stack: Stack, quiet_key: str, quiet_agent: str, noisy: httpx.Client, tries: int = 5
) -> dict[str, Any]:
    """Another user's first token while one user holds a backlog of BACKLOG runs (DESIGN §5: it
    waits behind what the runtime holds, never behind the backlog)."""
    from chalicelib.capacity import RUNTIME_QUEUE_SIZE

    alone = [ws_run(stack, quiet_key, quiet_agent, "What is fNIRS?") for _ in range(3)]
    run_time = statistics.median(r["wall"] for r in alone)
    # The noisy user owns no collection: its runs answer without retrieval, as short as the quiet one's.
    noisy_config = {**LOAD_CONFIG, "collection": None}
    noisy_agent = noisy.post("/agents", json={"name": "noisy", "config": noisy_config}).json()["agent_id"]
    backlog: list[str] = []
    waits = []
    try:
        for _ in range(tries):
            in_flight = noisy.get("/limits").json()["limits"]["runs_in_flight"]["used"]
            for _ in range(BACKLOG - in_flight):
                body = {"input_data": {"query": "What is HbO?"}}
                backlog.append(noisy.post(f"/agents/{noisy_agent}/executions", json=body).json()["execution_id"])
            run = ws_run(stack, quiet_key, quiet_agent, "What is fNIRS?")
            waits.append(run["to_first_token"])
    finally:
        for execution_id in backlog:
            noisy.post(f"/executions/{execution_id}/stop")
    bound = (RUNTIME_QUEUE_SIZE + 1) * run_time
    return {
        f"another user's run alone, {LOAD_CONFIG['max_tokens']} tokens (s, median of 3)": round(run_time, 2),
        f"its first token behind a {BACKLOG}-run backlog of one user (s, p50 / p95 of {tries})": (
            round(percentile(waits, 0.5), 2), round(percentile(waits, 0.95), 2)
        ),
        "  p95 / (runtime queue + 1) run-times (goal <= 1)": round(percentile(waits, 0.95) / bound, 2),
    }


def bench_single(
    stack: Stack,
    key: str,
    api: httpx.Client,
    agent_id: str,
    engine: Any,
    store: dict[str, str],
    aws_tap: Tap,
    runtime_tap: Tap,
) -> dict[str, Any]:
    """One run at a time: overhead, first token, writes and stop, against the same work in-process."""
    from mcp_container.execution import parse_config

    report: dict[str, Any] = {}
    # As the runtime reads what the executor sends: the agent's config (its collection_id, once
    # the executor resolves the collection's name, is what retrieval searches).
    ask_config = parse_config({**api.get(f"/agents/{agent_id}").json()["config"], **store})
    ws_run(stack, key, agent_id, QUERY)  # warm both paths once
    in_process_run(engine, ask_config)
    platform, direct, deltas, writes, tokens, to_execute, frame_gaps, frames = [], [], [], [], [], [], [], []
    generation_direct, generation_platform = [], []
    by_table: dict[str, int] = {}
    for _ in range(RUNS):
        wall, generation, answer = in_process_run(engine, ask_config)
        direct.append(wall)
        generation_direct.append(generation)
        aws_tap.reset()
        runtime_tap.reset()
        run = ws_run(stack, key, agent_id, QUERY)
        platform.append(run["wall"])
        deltas.append((run["first_token"] - runtime_tap.first_tokens[run["execution_id"]]) * 1000)
        to_execute.append((runtime_tap.executes[run["execution_id"]] - run["started"]) * 1000)
        frame_gaps += [(b - a) * 1000 for a, b in itertools.pairwise(run["token_frames"])]
        frames.append(len(run["token_frames"]))
        output = run["frame"]["output_data"]
        assert output["answer"] == answer, "the platform and the in-process call must produce the same tokens"
        tokens.append(output["usage"].get("completion_tokens"))
        generation_platform.append(output["usage"]["generation_ms"] / 1000)
        time.sleep(0.5)  # let the executor's last writes land before counting them
        # Connection rows are the WebSocket client's own ($connect, $disconnect), not the run's.
        writes.append(len([w for w in aws_tap.writes if not w[1].endswith("-connections")]))
        by_table = {table.rsplit("-", 1)[-1]: 0 for _, table in aws_tap.writes}
        for _, table in aws_tap.writes:
            by_table[table.rsplit("-", 1)[-1]] += 1
    report["completion tokens per run"] = tokens
    report["full run via WebSocket (s, median)"] = round(statistics.median(platform), 3)
    report["same retrieval + generation in-process (s, median)"] = round(statistics.median(direct), 3)
    report["generation alone: in the runtime during platform runs / in-process"] = round(
        statistics.median(generation_platform) / statistics.median(generation_direct), 3
    )
    report["platform overhead ratio (goal <= 1.10)"] = round(statistics.median(platform) / statistics.median(direct), 3)
    report["first token: client minus runtime (ms, median; goal <= 150)"] = round(statistics.median(deltas), 1)
    report["start_agent to the runtime's /execute (ms, median; goal <= 100)"] = round(statistics.median(to_execute), 1)
    report["gap between token frames at the client (ms, p50 / p95; goal p95 <= 250)"] = (
        round(percentile(frame_gaps, 0.5)),
        round(percentile(frame_gaps, 0.95)),
    )
    report["token frames per run (median)"] = statistics.median(frames)
    # Token writes are bounded by time now (at most ~10 per second of generation), not per answer.
    report["DynamoDB writes per execution, start included (median)"] = statistics.median(writes)
    report["  by table, last run (connections: the client's own)"] = by_table
    stops = [
        ws_run(stack, key, agent_id, QUERY, stop_after_first_token=True)["stop_latency"] * 1000 for _ in range(RUNS)
    ]
    report["stop latency, stop_agent sent to execution_stopped (ms, median)"] = round(statistics.median(stops), 1)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description="Dynavera's benchmarks (DESIGN §10).")
    parser.add_argument("--full", action="store_true", help="the runtime's figures on 10,000 chunks, not 1,500")
    parser.add_argument("--load-only", action="store_true", help="only the throughput under load")
    parser.add_argument("--fairness-only", action="store_true", help="only another user's first token behind a backlog")
    args = parser.parse_args()
    report: dict[str, Any] = {}
    imports = import_app_ms()
    report["import app (ms, median of 7)"] = round(statistics.median(imports), 1)

    # The AWS endpoint the environment names (DESIGN §7), so a bench can run beside other stacks.
    aws_url = os.environ.get("AWS_ENDPOINT_URL") or endpoint.DEFAULT_URL
    aws_server = endpoint.ensure_endpoint(aws_url)
    aws_tap = Tap(int(aws_url.rsplit(":", 1)[1]))
    runtime_port = free_port()
    runtime_tap = Tap(runtime_port)
    stack = Stack(
        stage=f"bench{uuid.uuid4().hex[:6]}",
        gateway_port=free_port(),
        aws_url=aws_tap.url,
        runtime_url=runtime_tap.url,
        log_dir=ROOT / "build" / "logs" / "bench",
    )
    chroma_dir = tempfile.TemporaryDirectory(prefix="bench-chroma-")
    try:
        stack.start_aws()
        stack.start_chroma(Path(chroma_dir.name), port=free_port())
        stack.start_indexer()
        started = time.monotonic()
        stack.start_runtime(port=runtime_port)
        report["runtime healthy after start (s)"] = round(time.monotonic() - started, 2)
        stack.start_gateway()

        from chalicelib.keys import create_api_key
        from chalicelib.wiring import wire

        wire(stack.settings)

        key, _ = create_api_key("bench", "bench")
        api = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"})
        collection, uploads = upload_corpus(stack.api_url, key, wait_seconds=300)
        assert not any(u.error for u in uploads), [(u.path.name, u.error) for u in uploads]
        # The in-process baseline searches what the runtime searches: the collection, by its id.
        ask_config = {"collection_id": collection["collection_id"]}
        agent_id = api.post("/agents", json={"name": "bench", "config": CONFIG}).json()["agent_id"]
        if not (args.load_only or args.fairness_only):
            report.update(bench_rest(api, agent_id))
        # The poller starts after the REST figures, and the runs they queued are dropped unrun.
        sqs = endpoint.client("sqs", aws_tap.url)
        sqs.purge_queue(QueueUrl=sqs.get_queue_url(QueueName=stack.settings.runs_queue_name)["QueueUrl"])
        stack.start_poller()

        from mcp_container.config import Settings
        from mcp_container.engine import Engine

        engine = Engine(Settings.from_env({**os.environ, "DYNAVERA_CHROMA_URL": str(stack.chroma_url)}))
        engine.load()
        if not (args.load_only or args.fairness_only):
            report.update(bench_single(stack, key, api, agent_id, engine, ask_config, aws_tap, runtime_tap))
        load_agent = api.post("/agents", json={"name": "load", "config": LOAD_CONFIG}).json()["agent_id"]
        if not args.fairness_only:
            report.update(bench_load(stack, key, load_agent, engine, ask_config, runtime_tap))
        if not args.load_only:
            noisy_key, _ = create_api_key("bench-noisy", "bench")
            noisy = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {noisy_key}"}, timeout=30)
            report.update(bench_fairness(stack, key, load_agent, noisy))
    finally:
        stack.stop()
        chroma_dir.cleanup()
        if aws_server is not None:
            aws_server.stop()

    width = max(len(k) for k in report)
    for name, value in report.items():
        print(f"{name:<{width}}  {value}")
    if args.load_only or args.fairness_only:
        return 0
    print("\nRuntime benchmark:", flush=True)
    runtime_bench = [sys.executable, str(ROOT / "bench" / "runtime_bench.py")]
    if subprocess.run(runtime_bench, check=False, cwd=ROOT).returncode:
        return 1
    print("\nStore benchmark:", flush=True)
    store_bench = [sys.executable, str(ROOT / "bench" / "store_bench.py"), *(["--full"] if args.full else [])]
    return subprocess.run(store_bench, check=False, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
