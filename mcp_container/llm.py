"""Text generation behind one small interface: load, stream tokens, cancel.

GPT4All is the backend today. Its Python bindings have had no release since 2.8.2 and its
bundled llama.cpp cannot load newer architectures, so nothing outside this module knows
it is GPT4All: a llama.cpp backend only has to implement `Generator`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

Role = Literal["system", "user"]

# GPT4All processes the prompt in batches of this many tokens and checks for a cancel
# between them; larger is faster but makes a cancel during prompt processing slower.
PROMPT_BATCH = 64


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 256
    temperature: float = 0.2


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


class GenerationError(RuntimeError):
    """The model could not produce an answer (for example the prompt does not fit)."""


class Generator(Protocol):
    name: str

    def load(self) -> None: ...

    def stream(
        self, messages: Sequence[Message], params: GenerationParams, stop: threading.Event, usage: Usage
    ) -> Iterator[str]:
        """Yield the answer piece by piece until done or until `stop` is set; fill `usage`."""
        ...


def chatml(messages: Sequence[Message]) -> tuple[str, str]:
    """SmolLM2's chat template (ChatML) as GPT4All wants it: a template and the user text.

    The user text stays outside the template so that GPT4All tokenizes it without special
    tokens: a question containing `<|im_end|>` cannot close its own turn.
    """
    system = "".join(f"<|im_start|>system\n{m.content}<|im_end|>\n" for m in messages if m.role == "system")
    user = "\n\n".join(m.content for m in messages if m.role == "user")
    # GPT4All substitutes %1 and %2 in templates; a system prompt must not contain them.
    system = system.replace("%1", "% 1").replace("%2", "% 2")
    return f"{system}<|im_start|>user\n%1<|im_end|>\n<|im_start|>assistant\n", user


class GPT4AllGenerator:
    """One GPT4All model instance; a lock keeps it to one generation at a time."""

    def __init__(self, model_path: Path, n_threads: int | None = None, n_ctx: int = 2048) -> None:
        self.model_path = model_path
        self.name = model_path.name
        self._n_threads = n_threads
        self._n_ctx = n_ctx
        self._model: Any = None  # a gpt4all.GPT4All; the package ships no type stubs
        self._lock = threading.Lock()

    def load(self) -> None:
        if not self.model_path.is_file():
            raise GenerationError(
                f"model file {self.model_path} not found: run `python -m mcp_container.setup_model` "
                "or point DYNAVERA_MODEL at a GGUF file"
            )
        from gpt4all import GPT4All

        self._model = GPT4All(
            self.model_path.name,
            model_path=self.model_path.parent,
            allow_download=False,
            device="cpu",
            n_ctx=self._n_ctx,
            n_threads=self._n_threads,
        )
        log.info("loaded model %s", self.model_path)

    def stream(
        self, messages: Sequence[Message], params: GenerationParams, stop: threading.Event, usage: Usage
    ) -> Iterator[str]:
        pieces: queue.Queue[str | BaseException | None] = queue.Queue()
        # Set when the consumer walks away, so the worker stops on the next token.
        abandoned = threading.Event()
        worker = threading.Thread(
            target=self._generate, args=(messages, params, stop, abandoned, usage, pieces), daemon=True
        )
        worker.start()
        try:
            while (piece := pieces.get()) is not None:
                if isinstance(piece, BaseException):
                    raise piece
                yield piece
        finally:
            abandoned.set()
            worker.join()

    def _generate(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        stop: threading.Event,
        abandoned: threading.Event,
        usage: Usage,
        pieces: queue.Queue[str | BaseException | None],
    ) -> None:
        template, user_text = chatml(messages)

        def keep_going() -> bool:
            return not (stop.is_set() or abandoned.is_set())

        def on_prompt_token(_token_id: int) -> bool:
            usage.prompt_tokens += 1
            return keep_going()

        def on_token(token_id: int, text: str) -> bool:
            if token_id == -1:  # GPT4All reports errors, such as an oversized prompt, this way
                pieces.put(GenerationError(text))
                return False
            usage.completion_tokens += 1
            if text:
                pieces.put(text)
            return keep_going()

        try:
            with self._lock:
                if self._model is None:
                    raise GenerationError("model not loaded: call load() first")
                model = self._model
                # GPT4All's LLModel offers no per-call prompt callback, and without one a
                # cancel would wait for the whole prompt to be processed (seconds on CPU).
                model.model._prompt_callback = on_prompt_token
                model.model.prompt_model(
                    user_text,
                    template,
                    on_token,
                    n_predict=params.max_tokens,
                    temp=params.temperature,
                    # top_k=1 is greedy: temperature 0 gives the same tokens on every run.
                    top_k=1 if params.temperature == 0 else 40,
                    top_p=0.9,
                    repeat_penalty=1.1,
                    repeat_last_n=64,
                    n_batch=PROMPT_BATCH,
                    reset_context=True,
                )
        except Exception as error:  # noqa: BLE001 - re-raised in the consumer's thread
            pieces.put(error)
        finally:
            pieces.put(None)
