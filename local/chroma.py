"""A Chroma server (`chroma run` from the installed chromadb wheel, the client's own version) on
127.0.0.1: the shared store the runtime and the indexer reach, for tests and benchmarks."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from local.stack import free_port, stop_process

ROOT = Path(__file__).resolve().parents[1]
STARTED_WITHIN_SECONDS = 60.0


@dataclass
class ChromaServer:
    url: str
    path: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.process)


def start_chroma(path: Path, port: int | None = None) -> ChromaServer:
    port = port or free_port()
    path.mkdir(parents=True, exist_ok=True)
    log = path.parent / f"chroma-{port}.log"
    command = [str(ROOT / ".venv" / "bin" / "chroma"), "run", "--path", str(path), "--host", "127.0.0.1"]
    with log.open("wb") as output:
        process = subprocess.Popen([*command, "--port", str(port)], stdout=output, stderr=subprocess.STDOUT)
    server = ChromaServer(f"http://127.0.0.1:{port}", path, process)
    deadline = time.monotonic() + STARTED_WITHIN_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chroma exited with {process.returncode}: see {log}")
        try:
            if httpx.get(f"{server.url}/api/v2/heartbeat", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # a poll interval; the deadline bounds the wait
    server.stop()
    raise TimeoutError(f"chroma not answering within {STARTED_WITHIN_SECONDS} s: see {log}")
