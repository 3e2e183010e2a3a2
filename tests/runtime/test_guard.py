"""The runtime's front door (DESIGN §6): only holders of its secret get past /health, browser
pages are refused, and every refusal or malformed body answers in the contract's error shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

BODY = {"execution_id": "guard-test", "query": "What is fNIRS?", "config": {"max_tokens": 1}}


def error_of(answer: httpx.Response) -> str:
    assert answer.headers["content-type"].startswith("application/json"), answer.text
    return answer.json()["error"]["code"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/execute"), ("POST", "/executions/x/cancel"), ("POST", "/mcp"), ("GET", "/mcp"), ("GET", "/nowhere")],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-secret-of-some-length", "Basic abc", ""])
def test_every_route_but_health_needs_the_secret(
    runtime: Any, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    answer = httpx.request(method, f"{runtime.url}{path}", json=BODY if method == "POST" else None, headers=headers)
    assert answer.status_code == 401 and error_of(answer) == "unauthorized"
    assert httpx.get(f"{runtime.url}/health").status_code == 200


def test_a_browser_page_cannot_call_the_runtime_even_with_the_secret(runtime: Any) -> None:
    headers = {"Authorization": f"Bearer {runtime.secret}", "Origin": "http://evil.example"}
    answer = httpx.post(f"{runtime.url}/execute", json=BODY, headers=headers)
    assert answer.status_code == 403 and error_of(answer) == "forbidden_origin"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_bodies_that_are_not_json_are_refused(runtime: Any, content_type: str) -> None:
    headers = {"Authorization": f"Bearer {runtime.secret}", "Content-Type": content_type}
    answer = httpx.post(f"{runtime.url}/execute", content=b'{"query": "hi"}', headers=headers)
    assert answer.status_code == 415 and error_of(answer) == "unsupported_media_type"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"query": "hi", "input_data": {"f": Infinity}}',
        b'{"query": "hi", "input_data": {"f": NaN}}',
        b'{"query": "hi", "input_data": {"f": 1e400}}',
        b'{"query": "hi", "input_data": {"n": ' + b"9" * 39 + b"}}",
        b'{"query": "\\ud800"}',
        b'{"query": "hi", "input_data": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"query": "hi", "input_data": ' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}",
        b"\xff\xfe not utf-8",
    ],
    ids=["infinity", "nan", "1e400", "39-digits", "lone-surrogate", "deep-3000", "deep-40", "not-utf8"],
)
def test_malformed_json_is_a_400_in_the_error_shape(runtime: Any, raw: bytes) -> None:
    headers = {"Authorization": f"Bearer {runtime.secret}", "Content-Type": "application/json"}
    answer = httpx.post(f"{runtime.url}/execute", content=raw, headers=headers)
    assert answer.status_code == 400 and error_of(answer) == "invalid_json"


def test_unknown_routes_and_methods_answer_json(runtime: Any) -> None:
    headers = {"Authorization": f"Bearer {runtime.secret}"}
    assert error_of(answer := httpx.get(f"{runtime.url}/nowhere", headers=headers)) == "not_found"
    assert answer.status_code == 404
    assert error_of(answer := httpx.get(f"{runtime.url}/execute", headers=headers)) == "method_not_allowed"
    assert answer.status_code == 405
