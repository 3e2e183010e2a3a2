"""Retrieval and generation in one process: what /execute, the MCP tools and the benchmark all call.

The engine holds the model, the embedder and the store, each loaded once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mcp_container import contract
from mcp_container.config import Settings
from mcp_container.embedder import MiniLMEmbedder
from mcp_container.llm import GenerationParams, Generator, GPT4AllGenerator, Usage
from mcp_container.prompt import build_messages
from mcp_container.rag import Passage, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AskConfig:
    """`config` of /execute and of an Agent (DESIGN.md §3), with the runtime's defaults."""

    collection: str
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
        self.generator = generator or GPT4AllGenerator(settings.model_path, n_threads=settings.n_threads)
        self.embedder = MiniLMEmbedder(settings.embedder_path)
        self.store: Store | None = None

    def load(self) -> None:
        """Load the model, the embedder and the store; the model loads beside the rest.

        GPT4All loads in C without holding the GIL, so it overlaps the Python imports.
        """
        with ThreadPoolExecutor(max_workers=1) as pool:
            model = pool.submit(self.generator.load)
            self.embedder.load()
            self.store = Store(self.settings.rag_db)
            model.result()
        log.info(
            "engine ready: model %s, embedder %s, store %s",
            self.generator.name,
            self.embedder.name,
            self.settings.rag_db,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.generator.name,
            "embedder": self.embedder.name,
            "collections": self._store().collection_names(),
        }

    def retrieve(self, query: str, collection: str, top_k: int) -> list[Passage]:
        embedding = self.embedder.embed([query])[0]
        return self._store().search(collection, embedding, top_k)

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

    def _store(self) -> Store:
        if self.store is None:
            raise RuntimeError("engine not loaded: call load() first")
        return self.store
