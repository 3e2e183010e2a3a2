"""A runtime whose Chroma server does not answer: healthy for the load balancer, 503 for runs that
need the store (before any event, so the executor retries), and runs that need none still served."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from local.stack import free_port
from tests.fixtures.runtime import FNIRS_COLLECTION_ID, RuntimeProcess, runtime_process
from tests.runtime.ndjson import start_execution


@pytest.fixture(scope="module")
def storeless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    dead = f"http://127.0.0.1:{free_port()}"
    with runtime_process(tmp_path_factory.mktemp("storeless"), dead, index_corpus=False) as process:
        yield process


@pytest.fixture
def client(storeless: RuntimeProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {storeless.secret}"}
    with httpx.Client(base_url=storeless.url, headers=headers, timeout=60) as client:
        yield client


def test_health_stays_200_and_says_the_store_is_unreachable(client: httpx.Client) -> None:
    answer = client.get("/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok" and answer.json()["store"] == "unreachable"


def test_execute_on_a_collection_answers_503_before_any_event(client: httpx.Client) -> None:
    body = {"execution_id": "e-1", "query": "What is fNIRS?", "config": {"collection_id": FNIRS_COLLECTION_ID}}
    answer = client.post("/execute", json=body)
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("application/json") and answer.headers["retry-after"]
    assert answer.json()["error"]["code"] == "store_unreachable"
    # Nothing was admitted: the execution is unknown to cancel.
    assert client.post("/executions/e-1/cancel").status_code == 404


def test_execute_without_a_collection_does_not_need_the_store(client: httpx.Client) -> None:
    events = start_execution(client, "What is fNIRS?", collection_id=None, max_tokens=2).rest()
    assert events[-1]["type"] == "result"
