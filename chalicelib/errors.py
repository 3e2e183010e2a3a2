"""The small family of errors services raise, and their one mapping to HTTP and to frames."""

from __future__ import annotations

import json
from typing import Any

from chalice import Response
from chalice.app import ChaliceUnhandledError

import contract


class DynaveraError(ChaliceUnhandledError):
    """Base of every error a client may see; its class's code (the contract's) sets the status.

    It derives from ChaliceUnhandledError only because Chalice turns any other exception
    raised in a view into its own 500 body before middleware sees it.
    """

    code = contract.INTERNAL_ERROR

    def __init__(self, message: str, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code

    @property
    def status(self) -> int:
        return contract.HTTP_STATUS[type(self).code]

    @property
    def headers(self) -> dict[str, str]:
        """Headers its HTTP answer carries besides the body."""
        return {}


class Invalid(DynaveraError):
    code = contract.VALIDATION_ERROR


class InvalidJson(DynaveraError):
    code = contract.INVALID_JSON


class TooLarge(DynaveraError):
    code = contract.TOO_LARGE


class Unauthorized(DynaveraError):
    code = contract.UNAUTHORIZED


class NotFound(DynaveraError):
    code = contract.NOT_FOUND


class Conflict(DynaveraError):
    code = contract.CONFLICT


class Unavailable(DynaveraError):
    code = contract.UNAVAILABLE


def from_contract(err: contract.ContractError) -> DynaveraError:
    """The contract's refusal as the error class of its code."""
    cls = next((c for c in (InvalidJson, TooLarge) if c.code == err.code), Invalid)
    return cls(str(err), err.code, err.field)


class LimitReached(DynaveraError):
    """A per-user limit (chalicelib.limits) or the request rate is reached; the code names the
    limit, and the client is told when to try again."""

    code = contract.RATE_LIMIT

    def __init__(self, message: str, code: str, retry_after: int) -> None:
        super().__init__(message, code)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def error_response(err: DynaveraError) -> Response:
    return Response(body=error_body(err.code, err.message, err.field), status_code=err.status, headers=err.headers)


def error_frame(err: DynaveraError, request_id: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": err.code, "message": err.message}
    if err.field is not None:
        frame["field"] = err.field
    if request_id is not None:
        frame["request_id"] = request_id
    return frame


_CHALICE_CODES = {
    "MethodNotAllowedError": contract.METHOD_NOT_ALLOWED,
    "UnsupportedMediaType": contract.UNSUPPORTED_MEDIA_TYPE,
    "BadRequest": contract.BAD_REQUEST,
    "NotFoundError": contract.NOT_FOUND,
    "InternalServerError": contract.INTERNAL_ERROR,
}


def normalise_response(response: Response) -> Response:
    """Give Chalice's own error bodies ({"Code", "Message"}) the contract's shape, every JSON
    body its Content-Type (Chalice sends none for a view's dict), and every body strict JSON
    (Chalice's own json.dumps would write a stored NaN as a bare `NaN`)."""
    if response.body not in ("", None) and not any(k.lower() == "content-type" for k in response.headers):
        response.headers["Content-Type"] = "application/json"
    body = response.body
    if isinstance(body, str) and response.status_code >= 400:
        try:
            body = json.loads(body)
        except ValueError:
            return response
    if isinstance(body, dict) and "Code" in body and "Message" in body:
        fallback = contract.INTERNAL_ERROR if response.status_code >= 500 else contract.BAD_REQUEST
        code = _CHALICE_CODES.get(body["Code"], fallback)
        message = body["Message"] if code != contract.INTERNAL_ERROR else "An internal error occurred."
        body = error_body(code, message)
        response.headers["Content-Type"] = "application/json"
    if isinstance(body, dict | list):
        response.body = contract.dumps(body)
    return response
