"""A document's text, read in a child process bounded in time and memory.

An uploaded file is hostile until read: a PDF can take minutes or gigabytes to parse, so
pypdf runs in a spawned child with an address-space limit, killed at the deadline. Text
files must be strict UTF-8. Failures carry a code of `contract.DOCUMENT_FAILURES`.
"""

from __future__ import annotations

import io
import multiprocessing
import resource
import sys
import tempfile
from pathlib import Path

import contract
from mcp_container import chunking

EXTRACT_SECONDS = 120.0
EXTRACT_MEMORY_BYTES = 2 * 1024**3
# More text than this makes more than MAX_DOCUMENT_CHUNKS chunks whatever its layout (chunks
# overlap), so the child stops there instead of handing gigabytes back.
MAX_TEXT_CHARS = contract.MAX_DOCUMENT_CHUNKS * chunking.MAX_CHARS


class ExtractFailed(Exception):
    """The document yields no usable text; `code` is one of `contract.DOCUMENT_FAILURES`."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or contract.DOCUMENT_FAILURES[code])
        self.code = code


def extract(data: Path, filename: str, seconds: float = EXTRACT_SECONDS, memory: int = EXTRACT_MEMORY_BYTES) -> str:
    """The text of the file at `data` (named `filename` by its uploader), or ExtractFailed."""
    suffix = Path(filename).suffix.lower()
    if suffix not in contract.DOCUMENT_TYPES:
        raise ExtractFailed(contract.UNSUPPORTED_TYPE)
    # spawn, not fork: the parent holds ONNX Runtime's threads and boto3's connections.
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="extract-") as folder:
        out = Path(folder) / "text"
        child = context.Process(target=_child, args=(str(data), suffix, str(out), memory), daemon=True)
        child.start()
        child.join(seconds)
        if child.is_alive():
            child.kill()
            child.join()
            raise ExtractFailed("extract_timeout", f"Extracting the text took more than {seconds:g} s.")
        failure = out.with_suffix(".failed")
        if failure.exists():
            code, _, detail = failure.read_text("utf-8").partition("\n")
            raise ExtractFailed(code, detail)
        if child.exitcode != 0:
            # Killed by the kernel, or a crash in C: the file was more than a reader can take.
            raise ExtractFailed("too_many_chunks", f"Reading the file exhausted the reader (exit {child.exitcode}).")
        return out.read_text("utf-8")


def read_text(data: bytes, suffix: str) -> str:
    text = _pdf_text(data) if suffix == ".pdf" else _utf8_text(data)
    if not text.strip():
        raise ExtractFailed("no_text")
    if len(text) > MAX_TEXT_CHARS:
        raise ExtractFailed("too_many_chunks", f"The text is longer than {MAX_TEXT_CHARS:,} characters.")
    return text


def _utf8_text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ExtractFailed("not_text", f"This file is not UTF-8 text: {error.reason} at byte {error.start}.") from None
    if "\x00" in text:  # valid UTF-8, but no text file holds NUL bytes: binary data
        raise ExtractFailed("not_text", "This file holds NUL bytes: it is binary, not text.")
    return text.removeprefix("\ufeff")


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ExtractFailed("encrypted_pdf")
        pages: list[str] = []
        size = 0
        for page in reader.pages:
            pages.append(page.extract_text() or "")
            size += len(pages[-1])
            if size > MAX_TEXT_CHARS:
                break
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        # What pypdf raises on malformed files besides its own errors, as seen on broken PDFs.
        raise ExtractFailed("no_text", f"pypdf could not read this PDF: {error}") from None
    return "\n\n".join(pages)


def _child(source: str, suffix: str, out: str, memory: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    target = Path(out)
    try:
        text = read_text(Path(source).read_bytes(), suffix)
    except ExtractFailed as error:
        target.with_suffix(".failed").write_text(f"{error.code}\n{error}", "utf-8")
        sys.exit(1)
    except (MemoryError, RecursionError):
        target.with_suffix(".failed").write_text(
            f"too_many_chunks\nReading the file needs more than {memory // 1024**2} MiB.", "utf-8"
        )
        sys.exit(1)
    target.write_text(text, "utf-8")
