"""Loopback TCP taps for the benchmarks: forward a port unchanged while noting what passes.

One tap sits in front of the runtime and notes when each execution's /execute request reaches
it and when its first token line leaves it; one sits in front of the AWS endpoint and counts
DynamoDB write requests. Both only read the bytes;
tests may also hold one request back (`hold`) to force a race.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time

TOKEN = re.compile(rb'"type":\s*"token"')
EXECUTION = re.compile(rb'"execution_id":\s*"([0-9a-f-]{36})"')
# A DynamoDB request: its operation header, then (in its body) the table it names.
REQUEST = re.compile(rb'X-Amz-Target: DynamoDB_20120810\.(\w+)[\s\S]*?"TableName":\s*"([^"]+)"', re.IGNORECASE)
WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


class Hold:
    """The next request matching `pattern` waits until `release` is set; `held` says it is waiting."""

    def __init__(self, pattern: bytes) -> None:
        self.pattern = re.compile(pattern, re.DOTALL)
        self.held = threading.Event()
        self.release = threading.Event()


class Tap:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.first_tokens: dict[str, float] = {}  # execution_id → when its first token line passed
        self.executes: dict[str, float] = {}  # execution_id → when its POST /execute passed
        self.writes: list[tuple[str, str]] = []
        self.holds: list[Hold] = []
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._serve, daemon=True).start()
        self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold(self, pattern: bytes) -> Hold:
        hold = Hold(pattern)
        self.holds.append(hold)
        return hold

    def reset(self) -> None:
        self.first_tokens = {}
        self.executes = {}
        self.writes = []

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        stream: dict[str, str] = {}  # the execution this connection's request named
        await asyncio.gather(
            self._pipe(client_reader, server_writer, stream, upstream=True),
            self._pipe(server_reader, client_writer, stream, upstream=False),
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: dict[str, str], upstream: bool
    ) -> None:
        pending = b""
        try:
            while data := await reader.read(65536):
                if upstream:
                    pending = self._note_writes(pending + data)
                    if data.startswith(b"POST /execute "):
                        stream["execute"] = "yes"
                    if named := EXECUTION.search(data):
                        stream["execution_id"] = named.group(1).decode()
                        if stream.get("execute"):
                            self.executes.setdefault(stream["execution_id"], time.monotonic())
                    await self._wait_if_held(data)
                elif TOKEN.search(data) and stream.get("execution_id") not in self.first_tokens:
                    self.first_tokens[stream.get("execution_id", "")] = time.monotonic()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _wait_if_held(self, data: bytes) -> None:
        for hold in self.holds:
            if not hold.held.is_set() and hold.pattern.search(data):
                hold.held.set()
                await asyncio.get_running_loop().run_in_executor(None, hold.release.wait)

    def _note_writes(self, data: bytes) -> bytes:
        """Record each complete write request in data; return the unfinished rest."""
        end = 0
        for match in REQUEST.finditer(data):
            operation, table = match.group(1).decode(), match.group(2).decode()
            if operation in WRITE_OPERATIONS:
                self.writes.append((operation, table))
            end = match.end()
        return data[end:][-65536:]
