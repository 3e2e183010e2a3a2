"""Retrieval and generation in one process: what /execute, the MCP tools and the benchmark all call.

The engine holds the model and the embedder, each loaded once, and its handle on the shared store.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import contract
from mcp_container.config import Settings
from mcp_container.embedder import MiniLMEmbedder
from mcp_container.llm import GenerationError, GenerationParams, Generator, GPT4AllGenerator, Usage
from mcp_container.prompt import build_messages
from mcp_container.store import Passage, Store

log = logging.getLogger(__name__)

# How GPT4All says a prompt does not fit the model's context window.
CONTEXT_OVERFLOW = "context window"


@dataclass(frozen=True)
class AskConfig:
    """`config` of /execute and of an Agent (DESIGN.md §3), with the runtime's defaults."""

    # The collection to search (its id; the executor resolves the agent's collection name), or
    # None: the model answers from the question alone.
    collection_id: str | None = None
    system_prompt: str | None = None
    top_k: int = contract.NUMBERS["top_k"][2]
    max_tokens: int = contract.NUMBERS["max_tokens"][2]
    temperature: float = contract.NUMBERS["temperature"][2]

    @property
    def params(self) -> GenerationParams:
        return GenerationParams(max_tokens=self.max_tokens, temperature=self.temperature)


class Engine:
    def __init__(self, settings: Settings, generator: Generator | None = None) -> None:
        self.settings = settings
        self.generator = generator or GPT4AllGenerator(
            settings.model_path, n_threads=settings.n_threads, n_ctx=settings.context_tokens
        )
        self.embedder = MiniLMEmbedder(settings.embedder_path)
        self.store = Store.open(settings)

    def load(self) -> None:
        """Load the model and the embedder, and reach the store; the model loads beside the rest.

        GPT4All loads in C without holding the GIL, so it overlaps the Python imports. A store
        that does not answer yet is no reason not to start: /health says so, /execute answers
        503 until it does.
        """
        with ThreadPoolExecutor(max_workers=1) as pool:
            model = pool.submit(self.generator.load)
            self.embedder.load()
            reached = self.store.health()
            model.result()
        log.info(
            "engine ready: model %s, embedder %s, store %s (%s)",
            self.generator.name,
            self.embedder.name,
            self.store.where,
            "ok" if reached else "unreachable",
        )

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.generator.name,
            "embedder": self.embedder.name,
            "store": "ok" if self.store.health() else "unreachable",
        }

    def retrieve(self, query: str, collection_id: str | None, top_k: int) -> list[Passage]:
        """The passages nearest the query, read from the store on every call: a document indexed
        a moment ago by another process is found."""
        if collection_id is None:
            return []
        embedding = self.embedder.embed([query])[0]
        return self.store.search(collection_id, embedding, top_k)

    def generate(
        self,
        query: str,
        passages: list[Passage],
        config: AskConfig,
        stop: threading.Event | None = None,
        usage: Usage | None = None,
    ) -> Iterator[str]:
        """Stream the answer's tokens; set `stop` to end it early. Temperature 0 is deterministic."""
        messages = build_messages(query, passages, config.system_prompt)
        return self.generator.stream(messages, config.params, stop or threading.Event(), usage or Usage())

    def fit(
        self, query: str, passages: list[Passage], config: AskConfig, stop: threading.Event, usage: Usage
    ) -> tuple[list[Passage], Iterator[str]]:
        """Start the answer with as many passages, best first, as the model's context holds.

        Returns the passages used and the token stream, its first token already produced: the
        model says a prompt is too long only when it is given one, so the last passage is
        dropped until it fits. A question that does not fit alone fails (the API refuses those).
        """
        for kept in range(len(passages), -1, -1):
            tokens = self.generate(query, passages[:kept], config, stop, usage)
            try:
                first = next(tokens)
            except StopIteration:
                return passages[:kept], iter(())
            except GenerationError as error:
                if kept == 0 or CONTEXT_OVERFLOW not in str(error):
                    raise
                usage.prompt_tokens = 0
                continue
            return passages[:kept], itertools.chain([first], tokens)
        raise AssertionError("unreachable: the loop returns or raises at kept == 0")
