"""Request parsing: raw bodies and parameters in, checked values out, errors that say which limit."""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import contract
from chalicelib.errors import Invalid, InvalidJson, TooLarge, from_contract

MAX_BODY_BYTES = 64 * 1024
MAX_NAME_CHARS = 100
MAX_DESCRIPTION_CHARS = 1000
MAX_FILENAME_CHARS = 255
DEFAULT_PAGE = 20
MAX_PAGE = 100
DEFAULT_EVENTS_PAGE = 100
MAX_EVENTS_PAGE = 1000
MAX_AFTER = 10**9
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)

AGENT_CONFIG_DEFAULTS: dict[str, Any] = contract.default_config()
# The query parameters each route takes (method and resource path); any other is refused.
QUERY_PARAMETERS: dict[str, tuple[str, ...]] = {
    "GET /agents": ("limit", "next_token"),
    "GET /agents/{agent_id}/executions": ("limit", "next_token"),
    "GET /executions/{execution_id}/events": ("after", "limit"),
    "GET /collections": ("limit", "next_token"),
    "GET /collections/{collection_id}/documents": ("limit", "next_token", "status"),
}


@contextmanager
def _contract() -> Iterator[None]:
    """The shared contract's refusals as this API's errors, with the contract's code."""
    try:
        yield
    except contract.ContractError as err:
        raise from_contract(err) from err


def json_object(
    raw: bytes | str | None, max_bytes: int = MAX_BODY_BYTES, what: str = "The request body"
) -> dict[str, Any]:
    """Decode a REST body or a WebSocket frame that must be one JSON object, through the
    contract's strict parser: every edge refuses the same inputs with the same codes."""
    if isinstance(raw, str):
        # A frame arrives as text; a lone surrogate in it must reach the parser's refusal.
        raw = raw.encode("utf-8", "surrogatepass")
    if not raw:
        raise InvalidJson(f"{what} must be a JSON object; it was empty.")
    if len(raw) > max_bytes:
        raise TooLarge(f"{what} is over {max_bytes} bytes.")
    try:
        value = contract.loads(raw)
    except contract.ContractError as err:
        raise from_contract(contract.ContractError(f"{what}: {err}", err.code)) from err
    if not isinstance(value, dict):
        raise InvalidJson(f"{what} must be a JSON object.")
    return value


def _only(body: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Invalid(f"Unknown field(s) in {what}: {', '.join(unknown)}.", field=unknown[0])


def _text(value: Any, field: str, max_chars: int, min_chars: int = 0) -> str:
    if not isinstance(value, str):
        raise Invalid(f"'{field}' must be a string.", field=field)
    if len(value.strip()) < min_chars:
        raise Invalid(f"'{field}' must not be empty.", field=field)
    if len(value) > max_chars:
        raise Invalid(f"'{field}' must be at most {max_chars} characters.", field=field)
    return value


def agent_config(value: Any, base: Mapping[str, Any]) -> dict[str, Any]:
    with _contract():
        return contract.check_config(value, base)


def agent_fields(body: Mapping[str, Any], current_config: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an agent create or patch body, checked; config merged over the current one."""
    _only(body, {"name", "description", "config"}, "the agent")
    fields: dict[str, Any] = {}
    if "name" in body:
        fields["name"] = _text(body["name"], "name", MAX_NAME_CHARS, min_chars=1).strip()
    if "description" in body:
        fields["description"] = _text(body["description"], "description", MAX_DESCRIPTION_CHARS)
    if "config" in body:
        fields["config"] = agent_config(body["config"], current_config)
    return fields


def input_data(body: Mapping[str, Any]) -> dict[str, Any]:
    """The input_data of a start request: an object with a query, at most 32 KiB encoded."""
    if "input_data" not in body:
        raise Invalid("'input_data' is required, for example {\"query\": \"What is fNIRS?\"}.", field="input_data")
    data = body["input_data"]
    if not isinstance(data, dict):
        raise Invalid("'input_data' must be an object.", field="input_data")
    if len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")) > (
        contract.MAX_INPUT_BYTES
    ):
        raise TooLarge(f"'input_data' is over {contract.MAX_INPUT_BYTES // 1024} KiB encoded.", field="input_data")
    if "query" not in data:
        raise Invalid("'input_data.query' is required.", field=contract.QUERY_FIELD)
    with _contract():
        contract.check_query(data["query"])
    return data


def fits_context(query: str, config: Mapping[str, Any]) -> None:
    """Refuse at start a query that, with the agent's system prompt, might not fit the model."""
    with _contract():
        contract.check_fits_context(query, config.get("system_prompt") or contract.DEFAULT_SYSTEM_PROMPT)


def only_known_parameters(route: str, params: Mapping[str, str] | None) -> None:
    unknown = sorted(set(params or {}) - set(QUERY_PARAMETERS.get(route, ())))
    if unknown:
        raise Invalid(f"Unknown query parameter(s): {', '.join(map(repr, unknown))}.", field=unknown[0])


def uuid_param(value: Any, what: str) -> str:
    """An id from a path or a frame; anything that is not a UUID cannot name a resource."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as err:
        raise Invalid(f"'{what}' must be a UUID.", field=what) from err


def int_param(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if not re.fullmatch(r"\d{1,9}", value) or not low <= int(value) <= high:
        raise Invalid(f"'{name}' must be an integer from {low} to {high}.", field=name)
    return int(value)


def page_limit(params: Mapping[str, str] | None) -> int:
    return int_param((params or {}).get("limit"), "limit", DEFAULT_PAGE, 1, MAX_PAGE)


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.match(value):
        raise Invalid("'Idempotency-Key' must be 1-255 visible ASCII characters.", field="Idempotency-Key")
    return value


def collection_fields(body: Mapping[str, Any]) -> dict[str, str]:
    """A new collection's name (the contract's pattern, as agents name it) and description."""
    _only(body, {"name", "description"}, "the collection")
    if "name" not in body:
        raise Invalid("'name' is required.", field="name")
    with _contract():
        name = contract.check_collection_name(body["name"])
    return {"name": name, "description": _text(body.get("description", ""), "description", MAX_DESCRIPTION_CHARS)}


def document_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """A new document's display name, declared size in bytes and optional sha256 (lowercased)."""
    _only(body, {"filename", "size", "sha256"}, "the document")
    if "filename" not in body:
        raise Invalid("'filename' is required.", field="filename")
    filename = display_name(body["filename"])
    if not filename.lower().endswith(contract.DOCUMENT_TYPES):
        raise Invalid(
            f"{filename!r} is not a type that can be indexed: use {', '.join(contract.DOCUMENT_TYPES)}.",
            contract.UNSUPPORTED_TYPE,
            "filename",
        )
    size = body.get("size")
    if isinstance(size, float) and size.is_integer():
        size = int(size)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise Invalid("'size' must be the file's size in bytes, a whole number of at least 1.", field="size")
    if size > contract.MAX_DOCUMENT_BYTES:
        raise TooLarge(
            f"The file is {size} bytes; a document may be at most {contract.MAX_DOCUMENT_BYTES} bytes (50 MiB).",
            field="size",
        )
    sha256 = body.get("sha256")
    if sha256 is not None:
        if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
            raise Invalid("'sha256' must be the file's SHA-256 as 64 hexadecimal digits.", field="sha256")
        sha256 = sha256.lower()
    return {"filename": filename, "size": size, "sha256": sha256}


def display_name(value: Any) -> str:
    """A filename fit to show: its last path part, without control characters or leading dots.
    It is only ever displayed; the object's key is made of ids (contract.upload_key)."""
    if not isinstance(value, str):
        raise Invalid("'filename' must be a string.", field="filename")
    name = unicodedata.normalize("NFC", value).replace("\\", "/").rsplit("/", 1)[-1]
    # Control and format characters (a newline, an escape, a right-to-left override) go.
    name = "".join(char for char in name if unicodedata.category(char) not in ("Cc", "Cf"))
    name = name.strip().lstrip(".").strip()
    if not name:
        raise Invalid("'filename' must name a file, for example \"notes.md\".", field="filename")
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, extension = name.rpartition(".")
        name = stem[: MAX_FILENAME_CHARS - len(dot + extension)] + dot + extension
    return name


def document_status(params: Mapping[str, str] | None) -> str | None:
    status = (params or {}).get("status")
    if status is not None and status not in contract.DOCUMENT_STATUSES:
        raise Invalid(f"'status' must be one of {', '.join(contract.DOCUMENT_STATUSES)}.", field="status")
    return status
