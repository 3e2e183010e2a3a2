"""The prompt: retrieved passages with their sources, then the question, and an instruction to answer from them."""

from __future__ import annotations

from collections.abc import Sequence

from contract import DEFAULT_SYSTEM_PROMPT
from mcp_container.llm import Message
from mcp_container.store import Passage


def build_messages(question: str, passages: Sequence[Passage], system_prompt: str | None = None) -> list[Message]:
    if passages:
        context = "\n\n".join(f"[{n}] (source: {p.source})\n{p.text}" for n, p in enumerate(passages, 1))
    else:
        context = "(no passages were found)"
    user = f"Passages:\n\n{context}\n\nAnswer from the passages above.\nQuestion: {question}"
    return [Message("system", system_prompt or DEFAULT_SYSTEM_PROMPT), Message("user", user)]
