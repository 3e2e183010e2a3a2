"""The execution contract (DESIGN.md §3, §6), the one copy both sides install: the bounds and
defaults of a run's query and config, the default system prompt, and the error codes.

The runtime imports it as `mcp_container.contract`; the Lambda package holds the same file as
`chalicelib/contract.py` (a link to this one), so the runtime never imports Lambda code and the
Lambda never imports the runtime's. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Headers of /execute that carry the run's ids from the executor's logs and trace to the runtime's.
TRACE_HEADER = "X-Amzn-Trace-Id"
CORRELATION_HEADER = "X-Correlation-Id"

# Error codes (DESIGN.md §3): which limit a refused input broke.
INVALID_JSON = "invalid_json"
VALIDATION_ERROR = "validation_error"
TOO_LARGE = "too_large"

MAX_INPUT_BYTES = 32 * 1024
MAX_QUERY_CHARS = 4000
MAX_SYSTEM_PROMPT_CHARS = 4000
# The model's context window in tokens (SmolLM2 was trained on 8,192). A byte-level tokenizer
# makes at most one token of a byte, so a question whose UTF-8 bytes, with the system prompt's
# and room for the chat template, stay within it always fits; retrieved passages are trimmed
# to whatever room is left by the runtime.
CONTEXT_TOKENS = 8192
TEMPLATE_ALLOWANCE = 64
COLLECTION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]$"
DEFAULT_COLLECTION = "fnirs"
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful research assistant. Answer the question using only the numbered "
    "passages you are given, and cite them like [1]. If they do not contain the answer, "
    "say that you do not know."
)
# field → (lowest, highest, default, integer)
NUMBERS: dict[str, tuple[float, float, float, bool]] = {
    "top_k": (1, 20, 4, True),
    "max_tokens": (1, 2048, 256, True),
    "temperature": (0, 2, 0.2, False),
}
CONFIG_FIELDS = ("system_prompt", "collection", *NUMBERS)

_COLLECTION = re.compile(COLLECTION_PATTERN)


class ContractError(ValueError):
    """An input outside the contract; `code` is one of the error codes above."""

    def __init__(self, message: str, code: str = VALIDATION_ERROR) -> None:
        super().__init__(message)
        self.code = code


def default_config() -> dict[str, Any]:
    """An agent's config when its creator sets none."""
    config: dict[str, Any] = {"system_prompt": DEFAULT_SYSTEM_PROMPT, "collection": DEFAULT_COLLECTION}
    config.update({name: default for name, (_, _, default, _) in NUMBERS.items()})
    return config


def check_query(value: Any) -> str:
    if not isinstance(value, str):
        raise ContractError("'input_data.query' must be a string.")
    if not value.strip():
        raise ContractError("'input_data.query' must not be empty.")
    if len(value) > MAX_QUERY_CHARS:
        raise ContractError(f"'input_data.query' must be at most {MAX_QUERY_CHARS} characters.")
    return value


def check_fits_context(query: str, system_prompt: str) -> None:
    """Refuse a question that, with the agent's system prompt, might not fit the model's context."""
    used = len(query.encode("utf-8")) + len(system_prompt.encode("utf-8")) + TEMPLATE_ALLOWANCE
    if used > CONTEXT_TOKENS:
        raise ContractError(
            f"The query and the agent's system prompt take up to {used} of the model's {CONTEXT_TOKENS} "
            "context tokens; shorten the query (non-Latin text and emoji count several bytes a character).",
            TOO_LARGE,
        )


def check_config(value: Any, base: Mapping[str, Any]) -> dict[str, Any]:
    """`value`'s fields checked and laid over `base` (the defaults, or the agent's config)."""
    if not isinstance(value, dict):
        raise ContractError("'config' must be an object.")
    unknown = sorted(set(value) - set(CONFIG_FIELDS))
    if unknown:
        raise ContractError(f"Unknown field(s) in config: {', '.join(unknown)}.")
    config = dict(base)
    if "system_prompt" in value:
        prompt = value["system_prompt"]
        if not isinstance(prompt, str):
            raise ContractError("'config.system_prompt' must be a string.")
        if len(prompt) > MAX_SYSTEM_PROMPT_CHARS:
            raise ContractError(f"'config.system_prompt' must be at most {MAX_SYSTEM_PROMPT_CHARS} characters.")
        config["system_prompt"] = prompt
    if "collection" in value:
        collection = value["collection"]
        if not isinstance(collection, str) or not _COLLECTION.match(collection):
            raise ContractError(
                "'config.collection' must be 3-63 letters, digits, '.', '_' or '-', "
                "starting and ending with a letter or digit."
            )
        config["collection"] = collection
    for name, (low, high, _, integer) in NUMBERS.items():
        if name in value:
            config[name] = _number(value[name], f"config.{name}", low, high, integer)
    return config


def _number(value: Any, field: str, low: float, high: float, integer: bool) -> Any:
    # As JSON Schema counts them, 3.0 is an integer: JSON does not tell 3.0 from 3.
    if integer and isinstance(value, float) and value.is_integer():
        value = int(value)
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ContractError(f"'{field}' must be {kind} from {low:g} to {high:g}.")
    return value


# Collections and documents (DESIGN.md §3, §6): what the API, the indexer and the runtime agree on.
# The API writes a document's row and presigns its upload; S3 notifies the ingest queue; the
# indexer alone writes the index (the Chroma server) and the chunks in S3; the runtime reads it.
DOCUMENT_STATUSES = ("awaiting_upload", "queued", "extracting", "embedding", "indexed", "failed", "deleting")
DOCUMENT_FAILURES = {
    "too_large": "The file is larger than 50 MiB, or than the size it was announced with.",
    "unsupported_type": "Only .md, .txt and .pdf files can be indexed.",
    "encrypted_pdf": "This PDF is encrypted; upload a copy without a password.",
    "not_text": "This file is not UTF-8 text (it may be binary).",
    "no_text": "No text could be extracted (a scanned or blank PDF?).",
    "too_many_chunks": "The document makes more chunks than one document may have.",
    "extract_timeout": "Extracting the text took too long.",
    "upload_expired": "The file was not uploaded within an hour of asking to.",
}
DOCUMENT_TYPES = (".md", ".txt", ".pdf")
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
MAX_DOCUMENT_CHUNKS = 20_000
UPLOAD_EXPIRY_SECONDS = 3600
# Ingest-queue messages besides S3's ObjectCreated notifications (which arrive URL-encoded, and
# after an s3:TestEvent): the API asks the indexer to remove what it indexed.
DELETE_DOCUMENT = "delete_document"  # {"action", "collection_id", "document_id"}
DELETE_COLLECTION = "delete_collection"  # {"action", "collection_id"}


def chroma_collection_name(collection_id: str) -> str:
    """The index's name for a collection: derived from its id, never from a user's string."""
    return "c-" + collection_id.replace("-", "")


def upload_key(user_id: str, collection_id: str, document_id: str) -> str:
    """Where a document's original lies in the bucket: under its collection, never a user's path."""
    return f"uploads/{user_id}/{collection_id}/{document_id}"


def chunks_key(collection_id: str, document_id: str) -> str:
    """The document's chunks with their vectors, one JSON object a line, gzipped."""
    return f"chunks/{collection_id}/{document_id}.jsonl.gz"
