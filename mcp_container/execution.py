"""One execution as the runtime sees it: the request, then its events (progress, tokens, result).

/execute streams these events as NDJSON and the MCP `ask` tool collects them; both go
through the scheduler, so the model serves one of them at a time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import contract
from mcp_container.engine import AskConfig, Engine
from mcp_container.llm import GenerationError, Usage
from mcp_container.scheduler import Job, Scheduler
from mcp_container.store import Passage, StoreUnreachable

Event = dict[str, Any]

log = logging.getLogger(__name__)

InvalidRequest = contract.ContractError  # the body of /execute is unusable; `code` says why
# input_data may nest 32 levels (DESIGN.md §3) and sits two levels down in the body.
MAX_DEPTH = 34


def strict_json(raw: bytes) -> Any:
    """Parse a body as the contract's strict JSON; a body too deep is malformed JSON here."""
    return contract.loads(raw, MAX_DEPTH, contract.INVALID_JSON)


@dataclass(frozen=True)
class ExecuteRequest:
    execution_id: str
    query: str
    config: AskConfig
    agent_id: str | None = None
    # The caller's trace and correlation ids, for this execution's log lines.
    trace: str = ""

    @classmethod
    def parse(cls, body: Any, headers: Mapping[str, str] | None = None) -> ExecuteRequest:
        if not isinstance(body, dict):
            raise InvalidRequest("the body must be a JSON object")
        if "query" not in body:
            raise InvalidRequest("'query' is required.")
        query = contract.check_query(body["query"])
        execution_id = body.get("execution_id") or str(uuid.uuid4())
        if not isinstance(execution_id, str):
            raise InvalidRequest("execution_id must be a string")
        agent_id = body.get("agent_id")
        return cls(
            execution_id=execution_id,
            query=query,
            config=parse_config(body.get("config")),
            agent_id=agent_id if isinstance(agent_id, str) else None,
            trace=_trace(headers or {}),
        )


def _trace(headers: Mapping[str, str]) -> str:
    ids = {"trace": headers.get(contract.TRACE_HEADER), "correlation": headers.get(contract.CORRELATION_HEADER)}
    return " ".join(f"{name}={value}" for name, value in ids.items() if value)


def parse_config(raw: Any) -> AskConfig:
    """The run's config checked against the shared contract, over its defaults.

    The collection searched is `collection_id`, which the executor adds; the agent's
    `collection` (a name) may come along and is checked, but names nothing here.
    """
    fields = {} if raw is None else raw
    if not isinstance(fields, dict):
        raise InvalidRequest("'config' must be an object.")
    fields = dict(fields)
    collection_id = contract.check_collection_id(fields.pop("collection_id", None))
    config = contract.check_config(fields, contract.default_config())
    return AskConfig(
        collection_id=collection_id,
        system_prompt=config["system_prompt"],
        top_k=config["top_k"],
        max_tokens=config["max_tokens"],
        temperature=float(config["temperature"]),
    )


def progress(stage: str, message: str) -> Event:
    return {"type": "progress", "stage": stage, "message": message}


async def run_execution(
    engine: Engine, scheduler: Scheduler, job: Job, request: ExecuteRequest
) -> AsyncIterator[Event]:
    """The events of one admitted execution; always gives up its place when it ends."""
    try:
        if not scheduler.is_running(job):
            yield progress("queued", "waiting for the model to finish another execution")
        if not await scheduler.wait_turn(job):
            yield {"type": "cancelled"}
            return
        config = request.config
        log.info("execution %s: generating %s", job.execution_id, request.trace)
        if config.collection_id is not None:
            yield progress("retrieving", f"searching collection {config.collection_id}")
        started = time.perf_counter()
        passages = await asyncio.to_thread(engine.retrieve, request.query, config.collection_id, config.top_k)
        retrieval_ms = _ms_since(started)
        yield progress("generating", f"answering from {len(passages)} passages")
        started = time.perf_counter()
        usage = Usage()
        answer: list[str] = []
        found = len(passages)
        passages, tokens = await asyncio.to_thread(engine.fit, request.query, passages, config, job.stop, usage)
        if len(passages) < found:
            yield progress("generating", f"the model's context holds {len(passages)} of the {found} passages")
        async for text in _from_thread(tokens):
            answer.append(text)
            yield {"type": "token", "text": text}
        if job.cancelled:
            yield {"type": "cancelled"}
            return
        yield {"type": "result", "output": _output("".join(answer), passages, usage, retrieval_ms, _ms_since(started))}
    except (StoreUnreachable, GenerationError) as error:
        yield {"type": "error", "message": str(error)}
    except Exception as error:  # the stream's last line must say what happened, not just stop
        log.exception("execution %s failed %s", job.execution_id, request.trace)
        yield {"type": "error", "message": f"runtime error: {error}"}
    finally:
        scheduler.finish(job)
        log.info("execution %s: done %s", job.execution_id, request.trace)


def _output(answer: str, passages: list[Passage], usage: Usage, retrieval_ms: float, generation_ms: float) -> Event:
    return {
        "answer": answer.strip(),
        "sources": [p.to_dict() for p in passages],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "retrieval_ms": retrieval_ms,
            "generation_ms": generation_ms,
        },
    }


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


_DONE = object()


async def _from_thread(tokens: Iterator[str]) -> AsyncIterator[str]:
    """Iterate a blocking token stream in a thread and hand each token over as soon as it exists."""
    loop = asyncio.get_running_loop()
    handoff: asyncio.Queue[object] = asyncio.Queue()

    def hand_over(item: object) -> None:
        try:
            loop.call_soon_threadsafe(handoff.put_nowait, item)
        except RuntimeError:  # the loop has closed (server shutdown): nobody is listening
            pass

    def pump() -> None:
        try:
            for text in tokens:
                hand_over(text)
            hand_over(_DONE)
        except Exception as error:  # noqa: BLE001 - re-raised on the loop's side
            hand_over(error)

    threading.Thread(target=pump, name="generation", daemon=True).start()
    while (item := await handoff.get()) is not _DONE:
        if isinstance(item, BaseException):
            raise item
        yield str(item)
