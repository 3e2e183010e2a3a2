"""/execute, cancel and the wait queue of a real runtime process with the real model and corpus."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.runtime.ndjson import start_execution

CORPUS = Path(__file__).resolve().parents[2] / "mcp_container" / "corpus"
LONG = {"max_tokens": 1024, "temperature": 0}  # outlasts any test that cancels it


@pytest.fixture
def client(runtime: Any) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {runtime.secret}"}
    with httpx.Client(base_url=runtime.url, headers=headers, timeout=60) as client:
        yield client


def wait_until_released(client: httpx.Client, execution_id: str, within: float) -> None:
    """A released execution is unknown to cancel; that is how a test sees the model go free."""
    deadline = time.monotonic() + within
    while client.post(f"/executions/{execution_id}/cancel").status_code != 404:
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution {execution_id} still holds its place after {within} s")
        time.sleep(0.05)


def test_health_names_model_embedder_and_store(client: httpx.Client) -> None:
    health = client.get("/health").json()
    assert health == {"status": "ok", "model": health["model"], "embedder": "all-MiniLM-L6-v2", "store": "ok"}
    assert health["model"].endswith(".gguf")


def test_execute_streams_tokens_then_an_answer_citing_demo_documents(client: httpx.Client) -> None:
    stream = start_execution(client, "What do short-separation channels measure?", max_tokens=24, temperature=0)
    events = stream.rest()
    types = [e["type"] for e in events]
    assert [e["stage"] for e in events if e["type"] == "progress"] == ["retrieving", "generating"]
    assert types[-1] == "result" and "token" in types
    output = events[-1]["output"]
    tokens = "".join(e["text"] for e in events if e["type"] == "token")
    assert output["answer"] == tokens.strip() and output["answer"]
    demo_docs = {p.name for p in CORPUS.iterdir()}
    assert output["sources"] and {s["source"] for s in output["sources"]} <= demo_docs
    assert output["sources"][0]["source"] == "06-short-separation-channels.md"
    assert set(output["sources"][0]) == {"source", "chunk_id", "score", "text"}
    usage = output["usage"]
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 24
    assert usage["retrieval_ms"] > 0 and usage["generation_ms"] > 0
    # Flushed per token: the first token reached us well before the answer was finished.
    first_token = stream.arrived[types.index("token")]
    assert stream.arrived[-1] - first_token > 0.05


def test_execute_uses_system_prompt_top_k_and_defaults(client: httpx.Client) -> None:
    stream = start_execution(client, "What is HbO?", top_k=1, max_tokens=4, system_prompt="Answer in French.")
    result = stream.until("result", "error")
    assert result["type"] == "result", result
    assert len(result["output"]["sources"]) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[]", "validation_error"),
        (b"{}", "validation_error"),
        (b'{"query": ""}', "validation_error"),
        (b'{"query": "   "}', "validation_error"),
        (b'{"query": 42}', "validation_error"),
        (b'{"query": "x", "config": {"top_k": 0}}', "validation_error"),
        (b'{"query": "x", "config": {"temperature": "hot"}}', "validation_error"),
        (b'{"query": "x", "config": []}', "validation_error"),
        (b'{"query": "x", "config": {"collection_id": "fnirs"}}', "validation_error"),
        (b'{"query": "x", "config": {"collection_id": "../../c-0f0f"}}', "validation_error"),
        (b'{"query": "x", "config": {"collection_id": 7}}', "validation_error"),
    ],
)
def test_bad_bodies_get_400_with_a_reason(client: httpx.Client, body: bytes, code: str) -> None:
    answer = client.post("/execute", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == code
    assert answer.json()["error"]["message"]


def test_without_a_collection_the_model_answers_from_the_question_alone(client: httpx.Client) -> None:
    events = start_execution(client, "What is fNIRS?", collection_id=None, max_tokens=4).rest()
    assert [e["stage"] for e in events if e["type"] == "progress"] == ["generating"]
    assert events[-1]["type"] == "result" and events[-1]["output"]["sources"] == []


def test_a_collection_with_nothing_indexed_yet_answers_without_passages(client: httpx.Client) -> None:
    events = start_execution(client, "What is fNIRS?", collection_id=str(uuid.uuid4()), max_tokens=4).rest()
    assert events[-1]["type"] == "result" and events[-1]["output"]["sources"] == []


def test_a_document_indexed_after_the_runtime_started_is_found_on_the_next_query(
    client: httpx.Client, runtime: Any
) -> None:
    from mcp_container.config import Settings
    from mcp_container.embedder import MiniLMEmbedder
    from mcp_container.indexer import embed_chunks
    from mcp_container.store import Store

    collection_id = str(uuid.uuid4())
    query = "Which instrument did the Zanzibar lab calibrate?"
    config = {"collection_id": collection_id, "top_k": 2, "max_tokens": 2}
    assert start_execution(client, query, **config).rest()[-1]["output"]["sources"] == []
    settings = Settings.from_env(runtime.env)
    text = "The Zanzibar lab calibrated its NIRSport 2 instrument every Monday."
    embed_chunks(Store.open(settings), MiniLMEmbedder(settings.embedder_path), collection_id, "doc-z", "lab.md", [text])
    sources = start_execution(client, query, **config).rest()[-1]["output"]["sources"]
    assert [(s["chunk_id"], s["source"], s["text"]) for s in sources] == [("doc-z:0", "lab.md", text)]


def test_cancel_mid_generation_ends_the_stream_with_cancelled_within_1_5_s(client: httpx.Client) -> None:
    stream = start_execution(client, "Explain the modified Beer-Lambert law.", **LONG)
    stream.until("token")
    asked = time.monotonic()
    assert client.post(f"/executions/{stream.execution_id}/cancel").status_code == 202
    rest = stream.rest()
    assert rest[-1] == {"type": "cancelled"}
    assert stream.arrived[-1] - asked < 1.5


def test_cancel_of_an_unknown_execution_is_404(client: httpx.Client) -> None:
    answer = client.post("/executions/never-started/cancel")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


def test_dropped_client_frees_the_model_for_the_next_request(client: httpx.Client) -> None:
    dropped = start_execution(client, "Describe optode montages.", **LONG)
    dropped.until("token")
    dropped.close()
    wait_until_released(client, dropped.execution_id, within=2.0)
    follower = start_execution(client, "What is fNIRS?", max_tokens=4)
    assert follower.next_event()["stage"] == "retrieving"  # not queued behind the dropped one
    assert follower.until("result", "error")["type"] == "result"


def test_full_queue_answers_429_and_a_waiting_execution_can_be_cancelled(client: httpx.Client, runtime: Any) -> None:
    running = start_execution(client, "Describe motion artefacts.", **LONG)
    running.until("token")
    waiting = [start_execution(client, "What is HbR?", max_tokens=4) for _ in range(runtime.queue_size)]
    try:
        assert all(w.next_event()["stage"] == "queued" for w in waiting)
        refused = client.post("/execute", json={"execution_id": "one-too-many", "query": "What is HbT?"})
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.json()["error"]["code"] == "busy"

        # Cancelled before it ever ran: its stream ends at once and never reaches the model.
        assert client.post(f"/executions/{waiting[0].execution_id}/cancel").status_code == 202
        assert [e["type"] for e in waiting[0].rest()] == ["cancelled"]
    finally:
        for stream in [running, *waiting]:
            client.post(f"/executions/{stream.execution_id}/cancel")
    assert running.rest()[-1] == {"type": "cancelled"}
    for stream in waiting[1:]:
        assert stream.rest()[-1] == {"type": "cancelled"}


def test_execute_gives_the_same_tokens_as_the_engine_in_process(client: httpx.Client, runtime: Any) -> None:
    from mcp_container.config import Settings
    from mcp_container.engine import AskConfig, Engine

    query = "How does fNIRS compare with EEG?"
    config = AskConfig(collection_id=runtime.collection_id, max_tokens=12, temperature=0)
    events = start_execution(client, query, max_tokens=12, temperature=0).rest()
    over_http = [e["text"] for e in events if e["type"] == "token"]

    engine = Engine(Settings.from_env(runtime.env))
    engine.load()
    passages = engine.retrieve(query, config.collection_id, config.top_k)
    assert [p.chunk_id for p in passages] == [s["chunk_id"] for s in events[-1]["output"]["sources"]]
    assert list(engine.generate(query, passages, config)) == over_http



def test_passages_beyond_the_models_context_are_dropped_and_the_answer_still_comes(runtime: Any) -> None:
    import threading
    from dataclasses import replace

    from mcp_container.config import Settings
    from mcp_container.engine import AskConfig, Engine
    from mcp_container.llm import Usage

    engine = Engine(replace(Settings.from_env(runtime.env), context_tokens=1024))
    engine.load()
    config = AskConfig(collection_id=runtime.collection_id, top_k=20, max_tokens=8, temperature=0)
    passages = engine.retrieve("What is fNIRS?", runtime.collection_id, 20)
    kept, tokens = engine.fit("What is fNIRS?", passages, config, threading.Event(), Usage())
    assert 0 < len(kept) < len(passages) and kept == passages[: len(kept)]
    assert "".join(tokens).strip()
