"""The contract (DESIGN.md §3, §4, §6): what the API, the runtime and the indexer agree on — the
bounds and defaults of a run's query and config, the default system prompt, strict JSON in and
out, the error codes with their HTTP statuses, and the documents' statuses and keys.

A package of its own, standard library only, so neither side imports the other's code: the
Lambda package gets a copy at package time (deploy/app_template.py puts it in vendor/), and the
runtime image copies it from the build context `contract` (mcp_container/Dockerfile).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

# Headers of /execute that carry the run's ids from the executor's logs and trace to the runtime's.
TRACE_HEADER = "X-Amzn-Trace-Id"
CORRELATION_HEADER = "X-Correlation-Id"

# Error codes (DESIGN.md §3, §4): the API's error classes (chalicelib/errors.py) and the
# runtime's refusals are built on these, and answer with the status each names.
INVALID_JSON = "invalid_json"
VALIDATION_ERROR = "validation_error"
TOO_LARGE = "too_large"
UNKNOWN_ACTION = "unknown_action"
BAD_REQUEST = "bad_request"
UNAUTHORIZED = "unauthorized"
FORBIDDEN_ORIGIN = "forbidden_origin"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
CONFLICT = "conflict"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
BUSY = "busy"
INTERNAL_ERROR = "internal_error"
UNAVAILABLE = "unavailable"
NOT_READY = "not_ready"
# Collections and documents: a type the indexer cannot read, a collection name the caller uses
# already, one an agent still names, one being deleted.
UNSUPPORTED_TYPE = "unsupported_type"
NAME_TAKEN = "name_taken"
IN_USE = "in_use"
DELETING = "deleting"
STORE_UNREACHABLE = "store_unreachable"  # the runtime's document store does not answer
# Per-user limits (their numbers: chalicelib/limits.py): a refusal at one answers 429 with the
# limit's own code; the request rate per API key at the edge answers RATE_LIMIT.
PER_USER_LIMITS = (
    "runs_in_flight",
    "connections",
    "subscribers_per_execution",
    "agents",
    "collections",
    "documents",
    "keys",
)
RATE_LIMIT = "rate_limit"


def limit_code(name: str) -> str:
    """The error code of a refusal at a per-user limit."""
    return f"{name}_limit"


HTTP_STATUS: dict[str, int] = {
    INVALID_JSON: 400,
    VALIDATION_ERROR: 400,
    TOO_LARGE: 400,
    UNKNOWN_ACTION: 400,
    BAD_REQUEST: 400,
    UNSUPPORTED_TYPE: 400,
    UNAUTHORIZED: 401,
    FORBIDDEN_ORIGIN: 403,
    NOT_FOUND: 404,
    METHOD_NOT_ALLOWED: 405,
    CONFLICT: 409,
    NAME_TAKEN: 409,
    IN_USE: 409,
    DELETING: 409,
    UNSUPPORTED_MEDIA_TYPE: 415,
    BUSY: 429,
    RATE_LIMIT: 429,
    **{limit_code(name): 429 for name in PER_USER_LIMITS},
    INTERNAL_ERROR: 500,
    UNAVAILABLE: 503,
    NOT_READY: 503,
    STORE_UNREACHABLE: 503,
}

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
# The demo user's collection, where `make run` and `make deploy DEMO=1` put the shipped corpus.
# No agent's default: an agent names one of its owner's collections, or none (null).
DEMO_COLLECTION = "fnirs"
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

# JSON nesting an input may have (DESIGN.md §3).
MAX_JSON_DEPTH = 32
# DynamoDB keeps numbers to 38 significant digits and refuses longer ones at write time.
MAX_INTEGER_DIGITS = 38

_COLLECTION = re.compile(COLLECTION_PATTERN)


class ContractError(ValueError):
    """An input outside the contract; `code` is one of the error codes above, `field` the input
    it is about (`config.top_k`), when there is one."""

    def __init__(self, message: str, code: str = VALIDATION_ERROR, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


def loads(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH, depth_code: str = TOO_LARGE) -> Any:
    """Strict JSON (DESIGN.md §3), the one parser of every edge: no NaN or Infinity, no number
    that is not a finite double (`1e400`), no integer DynamoDB could not store, no lone
    surrogate, no nesting deeper than `max_depth` (refused with `depth_code`)."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite, parse_int=_storable)
    except RecursionError:
        raise ContractError(f"The JSON nests deeper than {max_depth} levels.", depth_code) from None
    except ContractError:
        raise
    except ValueError as err:  # UnicodeDecodeError included
        raise ContractError(f"The body is not valid JSON: {err}.", INVALID_JSON) from None
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ContractError("The JSON holds a lone surrogate, which is not text.", INVALID_JSON) from None
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise ContractError(f"The JSON nests deeper than {max_depth} levels.", depth_code)
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return value


def _refuse_constant(name: str) -> Any:
    raise ContractError(f"{name} is not JSON.", INVALID_JSON)


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ContractError(f"The number {text[:50]} is not a finite double.", INVALID_JSON)
    return number


def _storable(text: str) -> int:
    if len(text.lstrip("-").lstrip("0")) > MAX_INTEGER_DIGITS:
        raise ContractError(
            f"The integer {text[:50]}… has more than {MAX_INTEGER_DIGITS} digits, more than can be stored.",
            INVALID_JSON,
        )
    return int(text)


def dumps(value: Any) -> str:
    """Strict JSON out: NaN and infinities, which only a value stored before the strict parser
    could hold, become null rather than make the whole answer unreadable."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(_finite_only(value), separators=(",", ":"), allow_nan=False)


def _finite_only(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_only(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_only(item) for item in value]
    return value


def default_config() -> dict[str, Any]:
    """An agent's config when its creator sets none: no collection, so no retrieval."""
    config: dict[str, Any] = {"system_prompt": DEFAULT_SYSTEM_PROMPT, "collection": None}
    config.update({name: default for name, (_, _, default, _) in NUMBERS.items()})
    return config


QUERY_FIELD = "input_data.query"


def check_query(value: Any) -> str:
    if not isinstance(value, str):
        raise ContractError("'input_data.query' must be a string.", field=QUERY_FIELD)
    if not value.strip():
        raise ContractError("'input_data.query' must not be empty.", field=QUERY_FIELD)
    if len(value) > MAX_QUERY_CHARS:
        raise ContractError(f"'input_data.query' must be at most {MAX_QUERY_CHARS} characters.", field=QUERY_FIELD)
    return value


def check_fits_context(query: str, system_prompt: str) -> None:
    """Refuse a question that, with the agent's system prompt, might not fit the model's context."""
    used = len(query.encode("utf-8")) + len(system_prompt.encode("utf-8")) + TEMPLATE_ALLOWANCE
    if used > CONTEXT_TOKENS:
        raise ContractError(
            f"The query and the agent's system prompt take up to {used} of the model's {CONTEXT_TOKENS} "
            "context tokens; shorten the query (non-Latin text and emoji count several bytes a character).",
            TOO_LARGE,
            QUERY_FIELD,
        )


def check_config(value: Any, base: Mapping[str, Any]) -> dict[str, Any]:
    """`value`'s fields checked and laid over `base` (the defaults, or the agent's config)."""
    if not isinstance(value, dict):
        raise ContractError("'config' must be an object.", field="config")
    unknown = sorted(set(value) - set(CONFIG_FIELDS))
    if unknown:
        raise ContractError(f"Unknown field(s) in config: {', '.join(unknown)}.", field=f"config.{unknown[0]}")
    config = dict(base)
    if "system_prompt" in value:
        prompt = value["system_prompt"]
        if not isinstance(prompt, str):
            raise ContractError("'config.system_prompt' must be a string.", field="config.system_prompt")
        if len(prompt) > MAX_SYSTEM_PROMPT_CHARS:
            raise ContractError(
                f"'config.system_prompt' must be at most {MAX_SYSTEM_PROMPT_CHARS} characters.",
                field="config.system_prompt",
            )
        config["system_prompt"] = prompt
    if "collection" in value:
        config["collection"] = check_collection_name(value["collection"], "config.collection", nullable=True)
    for name, (low, high, _, integer) in NUMBERS.items():
        if name in value:
            config[name] = _number(value[name], f"config.{name}", low, high, integer)
    return config


def check_collection_name(value: Any, field: str = "name", nullable: bool = False) -> str | None:
    """A collection's name: the pattern every collection is created with (or null, where allowed)."""
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not _COLLECTION.match(value):
        raise ContractError(
            f"'{field}' must be {'null or ' if nullable else ''}3-63 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit.",
            field=field,
        )
    return value


def _number(value: Any, field: str, low: float, high: float, integer: bool) -> Any:
    # As JSON Schema counts them, 3.0 is an integer: JSON does not tell 3.0 from 3.
    if integer and isinstance(value, float) and value.is_integer():
        value = int(value)
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ContractError(f"'{field}' must be {kind} from {low:g} to {high:g}.", field=field)
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
    "indexing_stalled": "Indexing stopped making progress (its indexer was lost); upload the file again.",
}
DOCUMENT_TYPES = (".md", ".txt", ".pdf")
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
MAX_DOCUMENT_CHUNKS = 20_000
UPLOAD_EXPIRY_SECONDS = 3600
# Ingest-queue messages besides S3's ObjectCreated notifications (which arrive URL-encoded, and
# after an s3:TestEvent): the API asks the indexer to remove what it indexed.
DELETE_DOCUMENT = "delete_document"  # {"action", "collection_id", "document_id"}
# user_id lets the indexer delete the collection's row last, once its documents are gone.
DELETE_COLLECTION = "delete_collection"  # {"action", "collection_id", "user_id"}
# The runtime's /execute reads the collection to search from `config.collection_id`: the id of
# the agent's collection (the executor resolves `config.collection`, a name), or null/absent
# for an agent without one, answered from the question alone. The runtime never sees names.
_COLLECTION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def check_collection_id(value: Any) -> str | None:
    """`config.collection_id` of /execute: a collection's uuid, or None for no retrieval."""
    if value is None:
        return None
    if not isinstance(value, str) or not _COLLECTION_ID.fullmatch(value):
        raise ContractError(
            "'config.collection_id' must be a collection id (a uuid) or null.", field="config.collection_id"
        )
    return value


def chroma_collection_name(collection_id: str) -> str:
    """The index's name for a collection: derived from its id, never from a user's string."""
    return "c-" + collection_id.replace("-", "")


def documents_bucket(stage: str, account_id: str) -> str:
    """The stage's documents bucket in an AWS account, as infra/data.yaml names it. S3 names are
    global across accounts: without the account id a stage's first deploy in a second account
    would fail, or find the name taken. With the longest stage (20 characters) it is 52 of S3's
    63; the region would not fit as well (67)."""
    return f"dynavera-{stage}-documents-{account_id}"


def upload_key(user_id: str, collection_id: str, document_id: str) -> str:
    """Where a document's original lies in the bucket: under its collection, never a user's path."""
    return f"uploads/{user_id}/{collection_id}/{document_id}"


def chunks_key(collection_id: str, document_id: str) -> str:
    """The document's chunks with their vectors, one JSON object a line, gzipped."""
    return f"chunks/{collection_id}/{document_id}.jsonl.gz"
