"""The runtime's front door, and the error shape of every refusal.

Only the executor (and MCP clients given the runtime's secret) get past /health: a request
needs `Authorization: Bearer <secret>`, checked in constant time. A browser page cannot make
requests for someone on their machine either: an `Origin` that is not allowed, or a body that
is not JSON, is refused before any route runs.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

import contract

OPEN_PATHS = frozenset({"/health"})


def error_response(
    code: str, message: str, headers: dict[str, str] | None = None, status: int | None = None
) -> JSONResponse:
    """The contract's error shape, with the status the contract gives `code` unless one is named."""
    status = status or contract.HTTP_STATUS[code]
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def refused_input(error: contract.ContractError) -> JSONResponse:
    """A body outside the contract, answered as the API answers it: code, message and field."""
    body = {"code": error.code, "message": str(error)}
    if error.field is not None:
        body["field"] = error.field
    return JSONResponse({"error": body}, status_code=contract.HTTP_STATUS[error.code])


class Guard:
    def __init__(self, app: ASGIApp, secret: str, allowed_origins: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.expected = f"Bearer {secret}".encode()
        self.allowed_origins = allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(scope) if scope["type"] == "http" and scope["path"] not in OPEN_PATHS else None
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal(scope, receive, send)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is not None and origin not in self.allowed_origins:
            return error_response(contract.FORBIDDEN_ORIGIN, "cross-origin requests are not accepted")
        if not hmac.compare_digest(headers.get("authorization", "").encode(), self.expected):
            return error_response(
                contract.UNAUTHORIZED, "a valid runtime secret is required", {"WWW-Authenticate": "Bearer"}
            )
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if has_body and media_type != "application/json":
            return error_response(contract.UNSUPPORTED_MEDIA_TYPE, "request bodies must be application/json")
        return None
