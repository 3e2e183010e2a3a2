"""The whole local stack in one place: AWS endpoint, tables, queues and bucket, the Chroma server,
runtime, indexer, gateway, poller.

`make run` runs it in the foreground; the integration tests start the same processes.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from chalicelib import capacity
from chalicelib.settings import Settings
from local import endpoint

ROOT = Path(__file__).resolve().parent.parent
CHROMA_PORT = 8002


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen[bytes] | None, timeout: float, what: str) -> None:
    """Wait until url answers 200, failing early if the process behind it exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before it was ready.")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready at {url} within {timeout:.0f} s.")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Stack:
    stage: str = "dev"
    gateway_port: int = 8000
    management_port: int = field(default_factory=free_port)  # the gateway's @connections API
    runtime_url: str = "http://127.0.0.1:8001"
    aws_url: str = endpoint.DEFAULT_URL
    visibility_timeout: int | None = None  # the deployed one (infra/data.yaml) unless a test asks
    log_dir: Path | None = None
    # The runtime's secret, which the executor sends (DESIGN §6); one per stack unless given.
    runtime_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    extra_env: dict[str, str] = field(default_factory=dict)
    # Where an embedded moto endpoint started by this stack keeps its data (make run); None: memory only.
    aws_state: Path | None = None
    chroma_url: str | None = None  # the shared store of the runtime and the indexer, once started
    # The data stack's, once start_aws made it: its name carries the endpoint's account id.
    documents_bucket: str | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    moto: endpoint.MotoServer | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}/ws"

    @property
    def lambda_env(self) -> dict[str, str]:
        """What this stack's Lambda code (and indexer) reads: its AWS endpoint, stage, documents
        bucket, runtime and @connections."""
        bucket = {"DOCUMENTS_BUCKET": self.documents_bucket} if self.documents_bucket else {}
        return {
            **endpoint.aws_environment(self.aws_url, self.stage),
            **bucket,
            "MCP_AGENT_URL": self.runtime_url,
            "DYNAVERA_RUNTIME_SECRET": self.runtime_secret,
            "WEBSOCKET_ENDPOINT": f"http://127.0.0.1:{self.management_port}/{self.stage}",
            **self.extra_env,
        }

    @property
    def env(self) -> dict[str, str]:
        store = {"DYNAVERA_CHROMA_URL": self.chroma_url} if self.chroma_url else {}
        return {
            **os.environ,
            "POWERTOOLS_METRICS_NAMESPACE": "Dynavera",
            "PYTHONPATH": str(ROOT),
            **store,
            **self.lambda_env,
        }

    @property
    def settings(self) -> Settings:
        """The settings its gateway and poller run with, for chalicelib.wiring.wire in this process."""
        return Settings.from_env(self.lambda_env)

    def start_aws(self) -> dict[str, str]:
        """The endpoint (reused if one answers) and this stage's tables, queues and bucket."""
        log_path = self.log_dir / "aws.log" if self.log_dir else None
        self.moto = endpoint.ensure_endpoint(self.aws_url, self.aws_state, log_path)
        outputs = endpoint.provision(self.stage, self.aws_url, self.visibility_timeout)
        self.documents_bucket = outputs["DocumentsBucketName"]
        return outputs

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """`python *args` in the stack's environment, its output in `log_dir/name.log` when there is one."""
        output = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env or self.env,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
        )
        self.processes.append(process)
        return process

    def start_runtime(self, port: int | None = None, timeout: float = 120.0) -> subprocess.Popen[bytes]:
        """The runtime on loopback, on `port` (default: runtime_url's, unless something sits between)."""
        port = port or int(self.runtime_url.rsplit(":", 1)[1])
        env = {
            "DYNAVERA_QUEUE_SIZE": str(capacity.RUNTIME_QUEUE_SIZE),
            **self.env,
            "DYNAVERA_RUNTIME_HOST": "127.0.0.1",
            "DYNAVERA_RUNTIME_PORT": str(port),
        }
        process = self.spawn("runtime", "-m", "mcp_container", env=env)
        wait_for(f"http://127.0.0.1:{port}/health", process, timeout, "The runtime")
        return process

    def start_chroma(self, path: Path, port: int = CHROMA_PORT) -> None:
        """The Chroma server (local.chroma) with its data in `path`, stopped with the stack; the
        runtime and indexer started after it use it."""
        # Imported here: local.chroma builds on this module's process helpers.
        from local.chroma import start_chroma

        server = start_chroma(path, port, self.log_dir / "chroma.log" if self.log_dir else None)
        self.processes.append(server.process)
        self.chroma_url = server.url

    def start_indexer(self) -> subprocess.Popen[bytes]:
        """The indexer on this stage's ingest queue, writing to the Chroma server (start_chroma first)."""
        if self.chroma_url is None:
            raise RuntimeError("Start the Chroma server first: two processes never share an embedded store.")
        return self.spawn("indexer", "-m", "mcp_container.indexer")

    def start_gateway(self, timeout: float = 30.0) -> None:
        process = self.spawn(
            "gateway",
            "-m",
            "local.gateway",
            "--port",
            str(self.gateway_port),
            "--management-port",
            str(self.management_port),
        )
        wait_for(f"{self.api_url}/health", process, timeout, "The gateway")

    def start_poller(self, sweep_every: float = 60.0, aws_url: str | None = None) -> None:
        """The executor's event source; `aws_url` puts something (a test's tap) before its AWS endpoint."""
        env = {**self.env, "AWS_ENDPOINT_URL": aws_url} if aws_url else None
        self.spawn("poller", "-m", "local.poller", "--sweep-every", str(sweep_every), env=env)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
