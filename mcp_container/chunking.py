"""Split documents into overlapping chunks on paragraph and sentence boundaries.

Chunks are sized for two readers: the embedder (all-MiniLM-L6-v2 reads 256 word pieces,
about 1,000 characters) and the small generator, whose prompt processing on CPU is the
slowest step of an answer, so a few short passages beat one long one.
"""

from __future__ import annotations

import re

MAX_CHARS = 600
OVERLAP_CHARS = 120

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def chunk_text(text: str, max_chars: int = MAX_CHARS, overlap_chars: int = OVERLAP_CHARS) -> list[str]:
    """Pack whole paragraphs, or sentences of long ones, into chunks of at most `max_chars`.

    Each chunk after the first starts with the last sentences of the one before, up to
    `overlap_chars`, so a fact split across a boundary is still whole in one chunk.
    """
    chunks: list[str] = []
    current: list[str] = []
    for unit in _units(text, max_chars):
        if current and _joined_length([*current, unit]) > max_chars:
            chunks.append(" ".join(current))
            current = _tail(current, overlap_chars)
            while current and _joined_length([*current, unit]) > max_chars:
                current.pop(0)
        current.append(unit)
    if current:
        chunks.append(" ".join(current))
    return chunks


def _units(text: str, max_chars: int) -> list[str]:
    """Paragraphs that fit, else their sentences, else word-bounded slices of a sentence."""
    units: list[str] = []
    for raw in _PARAGRAPH_BREAK.split(text):
        paragraph = " ".join(raw.split())
        if not paragraph:
            continue
        if len(paragraph) <= max_chars:
            units.append(paragraph)
            continue
        for sentence in _SENTENCE_END.split(paragraph):
            units.extend(_slices(sentence, max_chars))
    return units


def _slices(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    slices: list[str] = []
    current = ""
    for word in sentence.split(" "):
        while len(word) > max_chars:  # a run with no spaces, such as a URL or a table row
            if current:
                slices.append(current)
                current = ""
            slices.append(word[:max_chars])
            word = word[max_chars:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) > max_chars:
            slices.append(current)
            candidate = word
        current = candidate
    if current:
        slices.append(current)
    return slices


def _tail(units: list[str], budget: int) -> list[str]:
    kept: list[str] = []
    for unit in reversed(units):
        if _joined_length([unit, *kept]) > budget:
            break
        kept.insert(0, unit)
    return kept


def _joined_length(units: list[str]) -> int:
    return sum(len(u) for u in units) + len(units) - 1
