"""Real parts for the integration tests: the AWS endpoint on 127.0.0.1:4566 (reused, or a moto
server started here), gateways and pollers as separate processes, each suite on its own stage;
and, for documents, a Chroma server, the indexer and a runtime of the stack's own."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from local import endpoint
from local.corpus import upload_corpus
from local.stack import Stack, free_port

pytest_plugins = ["tests.fixtures.chroma", "tests.fixtures.runtime"]

ROOT = Path(__file__).resolve().parent.parent


def create_key(stack: Stack, user: str) -> str:
    """An API key made the way users make them: `./dynavera keys create USER`, last line."""
    done = subprocess.run(
        [str(ROOT / "dynavera"), "keys", "create", user], env=stack.env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


class Api(httpx.Client):
    """A REST client for one user of one stack: httpx's client on the stack's URL with the
    user's key, and the few calls the suites make again and again."""

    def __init__(self, stack: Stack, key: str | None) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        super().__init__(base_url=stack.api_url, headers=headers, timeout=30)

    def start(self, agent_id: str, query: str = "What does fNIRS measure?", **headers: str) -> httpx.Response:
        """POST a run of the agent; the answer as it came."""
        return self.post(f"/agents/{agent_id}/executions", json={"input_data": {"query": query}}, headers=headers)

    def started(self, agent_id: str, query: str = "What does fNIRS measure?") -> str:
        """The execution_id of a run of the agent, which must have been accepted (202)."""
        response = self.start(agent_id, query)
        assert response.status_code == 202, response.text
        return response.json()["execution_id"]


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    # DYNAVERA_TEST_AWS_URL lets two checkouts run their suites at once, each on its own endpoint.
    url = os.environ.get("DYNAVERA_TEST_AWS_URL", endpoint.DEFAULT_URL)
    server = endpoint.ensure_endpoint(url)
    # The tests' own boto3 clients reach the endpoint with its dummy credentials.
    local = endpoint.aws_environment(url, "")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        os.environ.setdefault(name, local[name])
    yield url
    if server is not None:
        server.stop()


def make_stack(name: str, **kwargs: Any) -> Stack:
    return Stack(stage=f"{name}{uuid.uuid4().hex[:6]}", gateway_port=free_port(), **kwargs)


@contextmanager
def running_stack(
    name: str, sweep_every: float = 60.0, poller_aws_url: str | None = None, store: Path | None = None, **kwargs: Any
) -> Iterator[Stack]:
    """A stack of its own stage with its gateway and poller running, stopped however the block ends.

    With `store`, also a Chroma server keeping its data there, the indexer and a runtime at the
    stack's runtime_url, both on that server: documents uploaded through the API get indexed
    and retrieved, as under `make run`.
    """
    stack = make_stack(name, **kwargs)
    try:
        stack.start_aws()
        if store is not None:
            stack.start_chroma(store, port=free_port())
            stack.start_indexer()
            stack.start_runtime()
        stack.start_gateway()
        stack.start_poller(sweep_every=sweep_every, aws_url=poller_aws_url)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def rest_stack(aws_endpoint: str) -> Iterator[Stack]:
    """The gateway alone: runs are queued and stay on the queue for the tests to read. Its
    session-wide users (alice, bob) make more collections over a run than one user is allowed
    at once; the limits themselves are tested on a stack of their own (tests/test_limits.py)."""
    stack = make_stack(
        "rest",
        aws_url=aws_endpoint,
        runtime_url=f"http://127.0.0.1:{free_port()}",
        extra_env={"DYNAVERA_LIMIT_COLLECTIONS": "1000"},
    )
    stack.start_aws()
    stack.start_gateway()
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def sqs(aws_endpoint: str) -> Any:
    return endpoint.client("sqs", aws_endpoint)


@pytest.fixture(scope="session")
def alice(rest_stack: Stack) -> Api:
    return Api(rest_stack, create_key(rest_stack, f"alice-{uuid.uuid4().hex[:6]}"))


@pytest.fixture(scope="session")
def bob(rest_stack: Stack) -> Api:
    return Api(rest_stack, create_key(rest_stack, f"bob-{uuid.uuid4().hex[:6]}"))


@pytest.fixture(scope="session")
def live_stack(aws_endpoint: str, runtime: Any) -> Iterator[Stack]:
    """Gateway, poller and indexer on their own stage, running against the real runtime process
    and its store: a document uploaded through the API is indexed where the runtime reads."""
    # The load tests hold 30 sockets on one execution, past the per-user defaults of 20
    # connections and 10 subscribers; the limits themselves are tested on a stack of their own.
    crowd = {"DYNAVERA_LIMIT_CONNECTIONS": "64", "DYNAVERA_LIMIT_SUBSCRIBERS_PER_EXECUTION": "64"}
    urls = {"aws_url": aws_endpoint, "runtime_url": runtime.url, "runtime_secret": runtime.secret}
    with running_stack("live", extra_env=crowd, **urls) as stack:
        stack.chroma_url = runtime.chroma_url
        stack.start_indexer()
        yield stack


def own_corpus(stack: Stack, key: str) -> None:
    """The user's `fnirs` collection holding the shipped corpus, uploaded as `make run` does it
    (on a stack with an indexer, such as live_stack)."""
    _, files = upload_corpus(stack.api_url, key, wait_seconds=300)
    assert all(f.status in ("indexed", "unchanged") for f in files), [(f.path.name, f.status) for f in files]


@pytest.fixture(scope="session")
def runtime_down_stack(aws_endpoint: str) -> Iterator[Stack]:
    """A stack whose runtime never answers; runs retry quickly, then fail with a clear message."""
    extra_env = {
        "RUN_ATTEMPTS": "2",
        "RETRY_BASE_SECONDS": "1",
        "EXECUTION_DEADLINE_SECONDS": "2",
        "PENDING_DEADLINE_SECONDS": "30",
    }
    runtime_url = f"http://127.0.0.1:{free_port()}"
    with running_stack("down", 0.5, aws_url=aws_endpoint, runtime_url=runtime_url, extra_env=extra_env) as stack:
        yield stack


@pytest.fixture(scope="session")
def documents_stack(aws_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The documents path whole: API, S3 notification, indexer, Chroma server, runtime, executor."""
    workdir = tmp_path_factory.mktemp("documents")
    # The runtime and the indexer load the prepared model and embedder (a no-op once made).
    subprocess.run([sys.executable, "-m", "mcp_container.setup_model"], cwd=ROOT, check=True, capture_output=True)
    runtime_url = f"http://127.0.0.1:{free_port()}"
    with running_stack(
        "docs", aws_url=aws_endpoint, runtime_url=runtime_url, store=workdir / "chroma", log_dir=workdir / "logs"
    ) as stack:
        yield stack
