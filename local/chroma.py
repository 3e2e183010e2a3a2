"""A Chroma server (`chroma run` from the installed chromadb wheel, the client's own version) on
127.0.0.1: the shared store the runtime and the indexer reach. The one way the project starts
one: the local stack (`make run`), the tests and the benchmarks."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from local.stack import free_port, stop_process, wait_for

CHROMA = Path(sys.executable).with_name("chroma")  # the venv's chromadb: the server matches the client
STARTED_WITHIN_SECONDS = 60.0


@dataclass
class ChromaServer:
    url: str
    path: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.process)


def start_chroma(path: Path, port: int | None = None, log: Path | None = None) -> ChromaServer:
    """A server keeping its data in `path`, answering its heartbeat when this returns; its output
    in `log` (default: beside `path`). Loopback only: Chroma 1.x has no authentication."""
    port = port or free_port()
    path.mkdir(parents=True, exist_ok=True)
    log = log or path.parent / f"chroma-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [str(CHROMA), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    server = ChromaServer(f"http://127.0.0.1:{port}", path, process)
    try:
        wait_for(f"{server.url}/api/v2/heartbeat", process, STARTED_WITHIN_SECONDS, f"The Chroma server (see {log})")
    except RuntimeError:
        server.stop()
        raise
    return server
