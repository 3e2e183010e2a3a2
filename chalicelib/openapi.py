"""The REST contract (DESIGN §3) as an OpenAPI 3.1 document, served at GET /openapi.json.

Its bounds, patterns, defaults and error codes are the ones validation enforces, read from the
same constants (the contract package and chalicelib.validation), so the two cannot drift apart:
a client (the console) reads them from here rather than restating them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import contract
from chalicelib import limits, validation

UUID = {"type": "string", "format": "uuid"}
STAMP = {"type": "string", "format": "date-time"}
ERRORS = {
    400: "The input broke a limit or was malformed; the code says which.",
    401: "No API key, or not a valid one.",
    404: "No such resource of the caller's.",
    409: "The request conflicts with the resource's state.",
    429: "A per-user limit or the request rate per key is reached: the code names it, Retry-After says when to retry.",
    503: "The run could not be queued; try again.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _config_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "system_prompt": {"type": "string", "maxLength": contract.MAX_SYSTEM_PROMPT_CHARS},
        "collection": {"type": "string", "pattern": contract.COLLECTION_PATTERN},
    }
    for name, (low, high, default, integer) in contract.NUMBERS.items():
        kind = "integer" if integer else "number"
        properties[name] = {"type": kind, "minimum": low, "maximum": high, "default": default}
    properties["system_prompt"]["default"] = contract.DEFAULT_SYSTEM_PROMPT
    properties["collection"]["default"] = contract.DEFAULT_COLLECTION
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _schemas() -> dict[str, Any]:
    name = {"type": "string", "minLength": 1, "maxLength": validation.MAX_NAME_CHARS, "pattern": r"\S"}
    description = {"type": "string", "maxLength": validation.MAX_DESCRIPTION_CHARS}
    query = {"type": "string", "minLength": 1, "maxLength": contract.MAX_QUERY_CHARS, "pattern": r"\S"}
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
                "config": {"type": "object"},
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
                    "description": f"At most {contract.MAX_INPUT_BYTES} bytes as UTF-8 JSON.",
                }
            },
        },
        "Execution": {
            "type": "object",
            "required": ["execution_id", "agent_id", "status", "input_data", "created_at"],
            "properties": {
                "execution_id": UUID,
                "agent_id": UUID,
                "status": {"enum": ["pending", "running", "completed", "failed", "stopped"]},
                "input_data": {"type": "object"},
                "output_data": {"type": ["object", "null"]},
                "error_message": {"type": ["string", "null"]},
                "created_at": STAMP,
                "started_at": nullable_stamp,
                "completed_at": nullable_stamp,
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
        "Event": {
            "type": "object",
            "required": ["seq", "event_type", "content", "timestamp"],
            "properties": {
                "seq": {"type": "integer", "minimum": 1},
                "event_type": {
                    "enum": ["started", "progress", "step", "message", "token", "completed", "error", "stopped"]
                },
                "content": {"type": "object"},
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


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def _paths() -> dict[str, Any]:
    agent_id = {"name": "agent_id", "in": "path", "required": True, "schema": UUID}
    execution_id = {"name": "execution_id", "in": "path", "required": True, "schema": UUID}
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
            "parameters": [{"name": "key_id", "in": "path", "required": True, "schema": UUID}],
            "delete": _operation("Revoke an API key", 204, None, (400, 404)),
        },
        "/limits": {"get": _operation("Each per-user limit and the caller's use of it", 200, _ref("Limits"))},
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
