"""The console on the local gateway: same origin as the API, config.json, deep links; and the
REST API's CORS, which answers the console's origin only (the CONSOLE_ORIGIN stage setting)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from local.stack import Stack
from tests.conftest import make_stack

CONSOLE_ORIGIN = "https://d1234abcd.cloudfront.net"


@pytest.fixture(scope="module")
def cors_stack(aws_endpoint: str) -> Iterator[Stack]:
    stack = make_stack("cors", aws_url=aws_endpoint, extra_env={"CONSOLE_ORIGIN": CONSOLE_ORIGIN})
    stack.start_aws()
    stack.start_gateway()
    yield stack
    stack.stop()


def test_console_is_served_on_the_api_origin_with_deep_links(rest_stack: Stack, console_dist: Path) -> None:
    index = (console_dist / "index.html").read_text()
    for path in ["/console/", "/console/agents", "/console/executions/0b6f6f0e-2d55-4f7c-9a0e-0d7f0f9c1a11"]:
        response = httpx.get(rest_stack.api_url + path)
        assert response.status_code == 200, path
        assert response.text == index
        assert response.headers["cache-control"] == "no-cache"
    asset = next((console_dist / "assets").glob("*.js")).name
    response = httpx.get(f"{rest_stack.api_url}/console/assets/{asset}")
    assert response.status_code == 200
    assert "immutable" in response.headers["cache-control"]
    assert httpx.get(f"{rest_stack.api_url}/console/assets/missing.js").status_code == 404
    assert httpx.get(f"{rest_stack.api_url}/console").headers["location"] == "/console/"


def test_config_json_points_at_this_gateway(rest_stack: Stack) -> None:
    config = httpx.get(f"{rest_stack.api_url}/console/config.json").json()
    assert config == {"apiUrl": rest_stack.api_url, "wsUrl": rest_stack.ws_url}


def test_preflight_answers_the_console_origin_only(cors_stack: Stack) -> None:
    response = httpx.options(
        f"{cors_stack.api_url}/agents/0b6f6f0e-2d55-4f7c-9a0e-0d7f0f9c1a11/executions",
        headers={
            "Origin": CONSOLE_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == CONSOLE_ORIGIN
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert set(response.headers["access-control-allow-methods"].split(",")) == {"GET", "POST", "OPTIONS"}


def test_a_refused_key_is_readable_by_the_console(cors_stack: Stack) -> None:
    response = httpx.get(
        f"{cors_stack.api_url}/agents", headers={"Origin": CONSOLE_ORIGIN, "Authorization": "Bearer nope"}
    )
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == CONSOLE_ORIGIN


def test_without_the_setting_no_origin_is_answered(rest_stack: Stack) -> None:
    preflight = httpx.options(
        f"{rest_stack.api_url}/agents", headers={"Origin": CONSOLE_ORIGIN, "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in httpx.get(f"{rest_stack.api_url}/health").headers


def test_every_console_answer_carries_the_security_headers(rest_stack: Stack, console_dist: Path) -> None:
    asset = next((console_dist / "assets").glob("*.js")).name
    paths = ["/console/", "/console/agents", f"/console/assets/{asset}", "/console/config.json", "/console/nope.js"]
    for path in paths:
        headers = httpx.get(rest_stack.api_url + path).headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path
        assert headers["x-frame-options"] == "DENY", path
        policy = dict(part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";"))
        assert policy["frame-ancestors"] == "'none'" and policy["default-src"] == "'none'"
        assert policy["script-src"] == "'self'" and "unsafe" not in headers["content-security-policy"]
        host = rest_stack.api_url.removeprefix("http://")
        # The documents bucket too: the console's uploads are presigned POSTs to the AWS endpoint.
        expected = ["'self'", rest_stack.api_url, f"ws://{host}", rest_stack.aws_url]
        assert policy["connect-src"].split() == expected, path
    # The REST API is not the console: its answers are JSON for clients, not pages.
    assert "content-security-policy" not in httpx.get(f"{rest_stack.api_url}/health").headers
