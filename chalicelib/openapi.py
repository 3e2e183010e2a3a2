"""The REST contract (DESIGN §3) as an OpenAPI 3.1 document, served at GET /openapi.json.

Its bounds, patterns, defaults and error codes are the ones validation enforces, read from the
same constants (the contract package and chalicelib.validation), so the two cannot drift apart:
a client (the console) reads them from here rather than restating them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import contract
from chalicelib import collections, limits, validation

UUID = {"type": "string", "format": "uuid"}
STAMP = {"type": "string", "format": "date-time"}
# Some character Python does not count as blank: ECMA's \s (the schema's dialect) leaves out the
# separators \x1c-\x1f and \x85, which str.strip() removes, so a name of just "\x1c" is blank here.
NOT_BLANK = r"[^\s\x1c-\x1f\x85]"
ERRORS = {
    400: "The input broke a limit or was malformed; the code says which.",
    401: "No API key, or not a valid one.",
    404: "No such resource of the caller's.",
    409: "The request conflicts with the resource's state.",
    429: "A per-user limit or the request rate per key is reached: the code names it, Retry-After says when to retry.",
    503: "The work could not be queued; try again.",
}
# A filename the API takes: one of the indexable types; only its last path part is kept.
FILENAME_PATTERN = r"[^\x00-\x20\x7f-\x9f./\\][^/\\]*\.(" + "|".join(
    "".join(f"[{c.lower()}{c.upper()}]" for c in suffix[1:]) for suffix in contract.DOCUMENT_TYPES
) + ")$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _config_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "system_prompt": {"type": "string", "maxLength": contract.MAX_SYSTEM_PROMPT_CHARS},
        "collection": {
            "type": ["string", "null"],
            "pattern": contract.COLLECTION_PATTERN,
            "description": "The name of one of the caller's own collections, or null for no retrieval.",
        },
    }
    for name, (low, high, default, integer) in contract.NUMBERS.items():
        kind = "integer" if integer else "number"
        properties[name] = {"type": kind, "minimum": low, "maximum": high, "default": default}
    properties["system_prompt"]["default"] = contract.DEFAULT_SYSTEM_PROMPT
    properties["collection"]["default"] = None
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _schemas() -> dict[str, Any]:
    name = {"type": "string", "minLength": 1, "maxLength": validation.MAX_NAME_CHARS, "pattern": NOT_BLANK}
    description = {"type": "string", "maxLength": validation.MAX_DESCRIPTION_CHARS}
    query = {"type": "string", "minLength": 1, "maxLength": contract.MAX_QUERY_CHARS, "pattern": NOT_BLANK}
    nullable_stamp = {"type": ["string", "null"], "format": "date-time"}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"enum": sorted(contract.HTTP_STATUS)},
                        "message": {"type": "string"},
                        "field": {"type": "string", "description": "The input a validation error is about."},
                    },
                }
            },
        },
        "AgentConfig": _config_schema(),
        "NewAgent": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": name, "description": description, "config": _ref("AgentConfig")},
            "additionalProperties": False,
        },
        "AgentChange": {
            "type": "object",
            "minProperties": 1,
            "properties": {"name": name, "description": description, "config": _ref("AgentConfig")},
            "additionalProperties": False,
        },
        "Agent": {
            "type": "object",
            "required": ["agent_id", "name", "description", "status", "config", "created_at", "updated_at"],
            "properties": {
                "agent_id": UUID,
                "name": {"type": "string"},
                "description": {"type": "string"},
                "status": {"type": "string"},
                "config": _ref("AgentConfig"),
                "created_at": STAMP,
                "updated_at": STAMP,
            },
        },
        "NewExecution": {
            "type": "object",
            "required": ["input_data"],
            "properties": {
                "input_data": {
                    "type": "object",
                    "required": ["query"],
                    "properties": {"query": query},
                    "description": (
                        f"At most {contract.MAX_INPUT_BYTES} bytes as UTF-8 JSON. The agent reads only `query`; "
                        "other keys are kept with the run for the caller's own use (labels, ticket ids)."
                    ),
                },
                "config": _ref("RunOverrides"),
            },
            "additionalProperties": False,
        },
        "RunOverrides": {
            "type": "object",
            "description": "This run's changes to its agent's settings.",
            # No defaults here: a field left out keeps the agent's value.
            "properties": {
                name: {key: value for key, value in _config_schema()["properties"][name].items() if key != "default"}
                for name in validation.RUN_OVERRIDES
            },
            "additionalProperties": False,
        },
        "Execution": {
            "type": "object",
            "required": [
                "execution_id", "agent_id", "status", "input_data", "config", "output_data",
                "error_message", "created_at", "started_at", "completed_at",
            ],
            "properties": {
                "execution_id": UUID,
                "agent_id": UUID,
                "status": {"enum": list(validation.EXECUTION_STATUSES)},
                "input_data": {
                    "type": "object",
                    "required": ["query"],
                    "properties": {"query": {"type": "string"}},
                    "additionalProperties": True,
                },
                "config": {
                    "description": "The settings it ran with: the agent's at start, with the run's overrides.",
                    **_ref("AgentConfig"),
                },
                "output_data": {"oneOf": [_ref("Output"), {"type": "null"}]},
                "error_message": {"type": ["string", "null"]},
                "created_at": STAMP,
                "started_at": nullable_stamp,
                "completed_at": nullable_stamp,
            },
        },
        "Output": {
            "type": "object",
            "required": ["answer", "sources"],
            "properties": {
                "answer": {"type": "string"},
                "sources": {"type": "array", "items": _ref("Source")},
                "usage": {
                    "type": "object",
                    "properties": {
                        name: {"type": "number"}
                        for name in ("prompt_tokens", "completion_tokens", "retrieval_ms", "generation_ms")
                    },
                },
            },
        },
        "Source": {
            "type": "object",
            "required": ["source", "chunk_id", "score", "text"],
            "properties": {
                "source": {"type": "string"},
                "chunk_id": {"type": "string"},
                "score": {"type": "number"},
                "text": {"type": "string"},
            },
        },
        "NewKey": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": name},
            "additionalProperties": False,
        },
        "Key": {
            "type": "object",
            "required": list(KEY_FIELDS),
            "properties": KEY_FIELDS,
        },
        "CreatedKey": {
            "type": "object",
            "required": [*KEY_FIELDS, "key"],
            "properties": {**KEY_FIELDS, "key": {"type": "string", "description": "The secret, shown this once."}},
        },
        "Limits": {
            "type": "object",
            "required": ["limits"],
            "properties": {
                "limits": {
                    "type": "object",
                    "required": list(limits.PER_USER),
                    "additionalProperties": {
                        "type": "object",
                        "required": ["limit", "used"],
                        "properties": {"limit": {"type": "integer"}, "used": {"type": ["integer", "null"]}},
                    },
                }
            },
        },
        **_document_schemas(name, description),
        "Event": {
            "type": "object",
            "required": ["seq", "event_type", "content", "timestamp"],
            "properties": {
                "seq": {"type": "integer", "minimum": 1},
                "event_type": {
                    "enum": ["started", "progress", "step", "message", "token", "completed", "error", "stopped"]
                },
                "content": {"type": "object", "additionalProperties": True},
                "timestamp": STAMP,
            },
        },
    }


KEY_FIELDS: dict[str, Any] = {
    "key_id": UUID,
    "name": {"type": "string"},
    "prefix": {"type": ["string", "null"]},
    "created_at": STAMP,
    "last_used_at": {"type": ["string", "null"], "format": "date-time"},
}


def _document_schemas(name: dict[str, Any], description: dict[str, Any]) -> dict[str, Any]:
    count = {"type": "integer", "minimum": 0}
    nullable_stamp = {"type": ["string", "null"], "format": "date-time"}
    return {
        "NewCollection": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": contract.COLLECTION_PATTERN},
                "description": description,
            },
            "additionalProperties": False,
        },
        "Collection": {
            "type": "object",
            "required": [
                "collection_id", "name", "description", "status", "document_count", "chunk_count", "created_at",
                "updated_at",
            ],
            "properties": {
                "collection_id": UUID,
                "name": {"type": "string"},
                "description": {"type": "string"},
                "status": {"enum": [collections.ACTIVE, contract.DELETING]},
                "document_count": {**count, "description": "Documents indexed (the indexer counts them)."},
                "chunk_count": {**count, "description": "Chunks of its indexed documents."},
                "created_at": STAMP,
                "updated_at": STAMP,
            },
        },
        "NewDocument": {
            "type": "object",
            "required": ["filename", "size"],
            "properties": {
                "filename": {
                    "type": "string",
                    "maxLength": validation.MAX_FILENAME_CHARS,
                    "pattern": FILENAME_PATTERN,
                    "description": "Shown only: path parts, leading dots and control characters are dropped.",
                },
                "size": {"type": "integer", "minimum": 1, "maximum": contract.MAX_DOCUMENT_BYTES},
                "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
            },
            "additionalProperties": False,
        },
        "Document": {
            "type": "object",
            "required": [
                "document_id", "collection_id", "filename", "size", "sha256", "status", "chunks_total",
                "chunks_done", "error", "created_at", "indexed_at",
            ],
            "properties": {
                "document_id": UUID,
                "collection_id": UUID,
                "filename": {"type": "string"},
                "size": {"type": "integer", "minimum": 1},
                "sha256": {"type": ["string", "null"]},
                "status": {"enum": list(contract.DOCUMENT_STATUSES)},
                "chunks_total": count,
                "chunks_done": count,
                "error": {
                    "oneOf": [
                        {"type": "null"},
                        {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"enum": list(contract.DOCUMENT_FAILURES)},
                                "message": {"type": "string"},
                            },
                        },
                    ]
                },
                "created_at": STAMP,
                "updated_at": STAMP,
                "indexed_at": nullable_stamp,
            },
        },
        "DocumentUpload": {
            "type": "object",
            "required": ["document", "upload"],
            "properties": {
                "document": _ref("Document"),
                "upload": {
                    "description": "An S3 presigned POST: send `fields` and then the file as multipart form data "
                    "to `url`. Null when the collection holds these bytes already.",
                    "oneOf": [
                        {"type": "null"},
                        {
                            "type": "object",
                            "required": ["url", "fields"],
                            "properties": {
                                "url": {"type": "string"},
                                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                            },
                        },
                    ],
                },
            },
        },
    }


def _page(items: str, schema: str, cursor: str, cursor_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [items, cursor],
        "properties": {items: {"type": "array", "items": _ref(schema)}, cursor: cursor_schema},
    }


def _query_parameters(route: str) -> list[dict[str, Any]]:
    """The query parameters validation lets through on this route, with their bounds."""
    limit = validation.MAX_EVENTS_PAGE if route.endswith("/events") else validation.MAX_PAGE
    schemas = {
        "limit": {"type": "integer", "minimum": 1, "maximum": limit},
        "after": {"type": "integer", "minimum": 0, "maximum": validation.MAX_AFTER},
        "next_token": {"type": "string"},
        # A run's status on the executions list, a document's on a collection's documents.
        "status": {
            "enum": list(validation.EXECUTION_STATUSES if route == "GET /executions" else contract.DOCUMENT_STATUSES)
        },
        "agent_id": UUID,
        "q": {"type": "string", "minLength": 1, "maxLength": contract.MAX_QUERY_CHARS, "pattern": NOT_BLANK},
    }
    names = validation.QUERY_PARAMETERS.get(route, ())
    return [{"name": name, "in": "query", "schema": schemas[name]} for name in names]


def _operation(
    summary: str, status: int, answer: dict[str, Any] | None, errors: tuple[int, ...] = (), **extra: Any
) -> dict[str, Any]:
    responses: dict[str, Any] = {str(status): {"description": summary}}
    if answer is not None:
        responses[str(status)]["content"] = {"application/json": {"schema": answer}}
    for code in (401, 429, *errors):
        responses[str(code)] = {
            "description": ERRORS[code],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    return {"summary": summary, "responses": responses, **extra}


def _with_answer(operation: dict[str, Any], status: int, summary: str, answer: dict[str, Any]) -> dict[str, Any]:
    operation["responses"][str(status)] = {"description": summary, "content": {"application/json": {"schema": answer}}}
    return operation


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def _id_in_path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": UUID}


def _paths() -> dict[str, Any]:
    agent_id = _id_in_path("agent_id")
    execution_id = _id_in_path("execution_id")
    token = {"type": ["string", "null"]}
    idempotency = {
        "name": "Idempotency-Key",
        "in": "header",
        "schema": {"type": "string", "pattern": validation.IDEMPOTENCY_KEY_PATTERN},
    }
    return {
        "/agents": {
            "get": _operation(
                "The caller's agents",
                200,
                _page("agents", "Agent", "next_token", token),
                (400,),
                parameters=_query_parameters("GET /agents"),
            ),
            "post": _operation("Create an agent", 201, _ref("Agent"), (400,), requestBody=_body("NewAgent")),
        },
        "/agents/{agent_id}": {
            "parameters": [agent_id],
            "get": _operation("One agent", 200, _ref("Agent"), (400, 404)),
            "patch": _operation("Change an agent", 200, _ref("Agent"), (400, 404), requestBody=_body("AgentChange")),
            "delete": _operation("Delete an agent", 204, None, (400, 404)),
        },
        "/agents/{agent_id}/executions": {
            "parameters": [agent_id],
            "get": _operation(
                "An agent's executions, newest first",
                200,
                _page("executions", "Execution", "next_token", token),
                (400, 404),
                parameters=_query_parameters("GET /agents/{agent_id}/executions"),
            ),
            "post": _operation(
                "Start an execution",
                202,
                _ref("Execution"),
                (400, 404, 409, 503),
                parameters=[idempotency],
                requestBody=_body("NewExecution"),
            ),
        },
        "/executions": {
            "get": _operation(
                "The caller's executions across agents, newest first; q searches the query text",
                200,
                _page("executions", "Execution", "next_token", token),
                (400,),
                parameters=_query_parameters("GET /executions"),
            ),
        },
        "/executions/{execution_id}": {
            "parameters": [execution_id],
            "get": _operation("One execution", 200, _ref("Execution"), (400, 404)),
        },
        "/executions/{execution_id}/events": {
            "parameters": [execution_id],
            "get": _operation(
                "An execution's events in seq order",
                200,
                _page("events", "Event", "next_after", {"type": ["integer", "null"]}),
                (400, 404),
                parameters=_query_parameters("GET /executions/{execution_id}/events"),
            ),
        },
        "/executions/{execution_id}/stop": {
            "parameters": [execution_id],
            "post": _operation("Stop an execution", 202, _ref("Execution"), (400, 404, 409)),
        },
        "/keys": {
            "get": _operation("The caller's API keys, never a secret", 200, _keys_list()),
            "post": _operation("Create an API key", 201, _ref("CreatedKey"), (400,), requestBody=_body("NewKey")),
        },
        "/keys/{key_id}": {
            "parameters": [_id_in_path("key_id")],
            "delete": _operation("Revoke an API key", 204, None, (400, 404)),
        },
        "/limits": {"get": _operation("Each per-user limit and the caller's use of it", 200, _ref("Limits"))},
        **_collection_paths(token),
    }


def _collection_paths(token: dict[str, Any]) -> dict[str, Any]:
    collection_id = _id_in_path("collection_id")
    document_id = _id_in_path("document_id")
    return {
        "/collections": {
            "get": _operation(
                "The caller's collections, newest first",
                200,
                _page("collections", "Collection", "next_token", token),
                (400,),
                parameters=_query_parameters("GET /collections"),
            ),
            "post": _operation(
                "Create a collection; its name is unique among the caller's",
                201,
                _ref("Collection"),
                (400, 409),
                requestBody=_body("NewCollection"),
            ),
        },
        "/collections/{collection_id}": {
            "parameters": [collection_id],
            "get": _operation("One collection", 200, _ref("Collection"), (400, 404)),
            "delete": _operation(
                "Delete a collection with its documents (409 in_use while an agent names it)",
                202,
                _ref("Collection"),
                (400, 404, 409, 503),
            ),
        },
        "/collections/{collection_id}/documents": {
            "parameters": [collection_id],
            "get": _operation(
                "A collection's documents, newest first",
                200,
                _page("documents", "Document", "next_token", token),
                (400, 404),
                parameters=_query_parameters("GET /collections/{collection_id}/documents"),
            ),
            "post": _with_answer(
                _operation(
                    "Add a document: its row and an upload straight to S3",
                    201,
                    _ref("DocumentUpload"),
                    (400, 404, 409),
                    requestBody=_body("NewDocument"),
                ),
                200,
                "The collection holds these bytes already (same sha256): that document",
                _ref("DocumentUpload"),
            ),
        },
        "/collections/{collection_id}/documents/{document_id}": {
            "parameters": [collection_id, document_id],
            "get": _operation("One document", 200, _ref("Document"), (400, 404)),
            "delete": _operation(
                "Delete a document; its chunks leave retrieval", 202, _ref("Document"), (400, 404, 503)
            ),
        },
    }


def _keys_list() -> dict[str, Any]:
    return {"type": "object", "required": ["keys"], "properties": {"keys": {"type": "array", "items": _ref("Key")}}}


@cache
def document() -> dict[str, Any]:
    public = {"security": []}
    health = {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}
    paths = {
        "/health": {"get": {**_operation("Liveness", 200, health, ()), **public}},
        "/openapi.json": {"get": {**_operation("This document", 200, {"type": "object"}, ()), **public}},
        **_paths(),
    }
    for route in ("/health", "/openapi.json"):
        # No key: neither refused as one nor counted against one.
        del paths[route]["get"]["responses"]["401"]
        del paths[route]["get"]["responses"]["429"]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Dynavera", "version": "1", "description": "Serverless AI agents (DESIGN.md §3)."},
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
    }


if __name__ == "__main__":
    # `make console-types` writes the document the console's API types are generated from.
    import json

    print(json.dumps(document(), indent=1))
