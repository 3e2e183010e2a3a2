"""The small family of errors services raise, and their one mapping to HTTP and to frames."""

from __future__ import annotations

import json
from typing import Any

from chalice import Response
from chalice.app import ChaliceUnhandledError

from chalicelib import contract


class DynaveraError(ChaliceUnhandledError):
    """Base of every error a client may see.

    It derives from ChaliceUnhandledError only because Chalice turns any other exception
    raised in a view into its own 500 body before middleware sees it.
    """

    code = "internal_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class Invalid(DynaveraError):
    code = "validation_error"


class InvalidJson(DynaveraError):
    code = "invalid_json"


class TooLarge(DynaveraError):
    code = "too_large"


class Unauthorized(DynaveraError):
    code = "unauthorized"


class NotFound(DynaveraError):
    code = "not_found"


class Conflict(DynaveraError):
    code = "conflict"


class Unavailable(DynaveraError):
    code = "unavailable"


_STATUS = {
    Invalid: 400,
    InvalidJson: 400,
    TooLarge: 400,
    Unauthorized: 401,
    NotFound: 404,
    Conflict: 409,
    Unavailable: 503,
}


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(err: DynaveraError) -> Response:
    status = next((s for cls, s in _STATUS.items() if isinstance(err, cls)), 500)
    return Response(body=error_body(err.code, err.message), status_code=status)


def error_frame(err: DynaveraError, request_id: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": err.code, "message": err.message}
    if request_id is not None:
        frame["request_id"] = request_id
    return frame


_CHALICE_CODES = {
    "MethodNotAllowedError": "method_not_allowed",
    "UnsupportedMediaType": "unsupported_media_type",
    "BadRequest": "bad_request",
    "NotFoundError": "not_found",
    "InternalServerError": "internal_error",
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
        code = _CHALICE_CODES.get(body["Code"], "error")
        message = body["Message"] if code != "internal_error" else "An internal error occurred."
        body = error_body(code, message)
        response.headers["Content-Type"] = "application/json"
    if isinstance(body, dict | list):
        response.body = contract.dumps(body)
    return response
