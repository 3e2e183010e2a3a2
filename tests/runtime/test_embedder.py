"""The runtime's ONNX embedder gives sentence-transformers' own vectors for all-MiniLM-L6-v2."""

from __future__ import annotations

import numpy as np

from mcp_container.config import Settings, minilm_folder
from mcp_container.embedder import MiniLMEmbedder


def test_onnx_vectors_match_sentence_transformers_encode() -> None:
    from sentence_transformers import SentenceTransformer

    texts = [
        "fNIRS measures haemoglobin.",
        "x",
        "Short-separation channels regress out scalp blood flow. " * 60,  # past 256 word pieces: truncated alike
        *[f"Passage {i} about optodes and montages." for i in range(70)],  # more than one batch
    ]
    ours = np.array(MiniLMEmbedder(Settings().embedder_path).embed(texts))
    reference = SentenceTransformer(str(minilm_folder()), device="cpu").encode(texts, normalize_embeddings=True)
    assert ours.shape == reference.shape == (len(texts), 384)
    assert np.abs(ours - reference).max() < 1e-4
