"""The REST API as the CLI and the deploy's demo upload call it: one user's key, the contract's
error shape turned into an ApiError, and paged lists walked to their end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx


class ApiError(Exception):
    """An answer of 4xx/5xx (or none at all: status 0, code `unreachable`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}" if status else message)
        self.status = status
        self.code = code
        self.message = message


class Api:
    def __init__(self, base_url: str, key: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout
        )

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(status, JSON answer or None), or ApiError."""
        try:
            response = self.client.request(method, path, json=body)
        except httpx.HTTPError as err:
            raise ApiError(
                0, "unreachable", f"cannot reach the API at {self.base_url}{path}: {err}. "
                "Is 'make run' running, or the stage deployed?"
            ) from err
        answer = response.json() if response.content else None
        if response.status_code >= 400:
            error = answer.get("error", {}) if isinstance(answer, dict) else {}
            raise ApiError(response.status_code, error.get("code", "error"), error.get("message", response.text))
        return response.status_code, answer

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request(method, path, body)[1]

    def pages(self, path: str, field: str, **query: str) -> Iterator[dict[str, Any]]:
        """Every item of a paged list (`?limit=&next_token=`), page after page."""
        token = None
        while True:
            params = {"limit": "100", **query, **({"next_token": token} if token else {})}
            page = self.call("GET", f"{path}?{urlencode(params)}")
            yield from page[field]
            token = page["next_token"]
            if not token:
                return

    def close(self) -> None:
        self.client.close()
