"""The local API Gateway: REST proxy events, WebSocket events and the @connections API,
all delivered to the same Chalice app that runs in Lambda.

Clients reach REST and WebSocket on the public port. The @connections API answers only on a
port of its own (as in AWS, where it needs IAM credentials), so no client can post frames into
another's socket, close it or read its address.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from chalicelib.errors import error_body
from chalicelib.limits import RATE_WINDOW_SECONDS
from local import console
from local.lambda_runtime import LambdaContext
from local.throttle import RateLimit

log = logging.getLogger("dynavera.gateway")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(error_body(code, message), status, headers=headers)


def _gone() -> Response:
    # The shape botocore turns into GoneException, as API Gateway answers it.
    return JSONResponse({"message": "Gone"}, 410, headers={"x-amzn-ErrorType": "GoneException"})


def _compile_routes(routes: dict[str, Any]) -> list[tuple[re.Pattern[str], str]]:
    compiled = []
    for resource in routes:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(resource))
        compiled.append((re.compile(f"^{pattern}$"), resource))
    return compiled


def _apigw_time() -> int:
    return int(time.time() * 1000)


@dataclass
class _Client:
    websocket: WebSocket
    source_ip: str
    connected_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat().replace("+00:00", "Z"))
    last_active_at: str = ""
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Gateway:
    def __init__(
        self,
        chalice_app: Any,
        ws_handlers: dict[str, Callable[..., Any]],
        stage: str,
        host: str,
        management_port: int,
        rate: RateLimit,
    ) -> None:
        self.app = chalice_app
        self.ws_handlers = ws_handlers
        self.stage = stage
        self.host = host
        self.management_port = management_port
        self.routes = _compile_routes(chalice_app.routes)
        self.clients: dict[str, _Client] = {}
        self.rate = rate
        # The Chalice app keeps the current request on itself, as one Lambda container does:
        # REST invocations run one at a time, like requests to a single warm container.
        self.rest_lock = threading.Lock()

    # REST ------------------------------------------------------------------------------
    async def rest(self, request: Request) -> Response:
        path = request.url.path
        match = next(((m, r) for p, r in self.routes if (m := p.match(path))), None)
        if match is None:
            return _error(404, "not_found", f"No route {request.method} {path}.")
        found, resource = match
        if request.method == "OPTIONS" and (preflight := self._preflight(resource)) is not None:
            return preflight
        refused = self._throttled(request)
        if refused is not None:
            return refused
        if request.method not in self.app.routes[resource]:
            allowed = ", ".join(sorted(self.app.routes[resource]))
            return _error(405, "method_not_allowed", f"{request.method} is not allowed on {path}.", {"Allow": allowed})
        body = await request.body()
        event = self._rest_event(request, resource, found.groupdict(), body)
        context = LambdaContext(function_name="dynavera-api")

        def invoke() -> dict[str, Any]:
            with self.rest_lock:
                return self.app(event, context)

        result = await run_in_threadpool(invoke)
        raw = result.get("body") or ""
        payload = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
        headers = {k: v for k, v in (result.get("headers") or {}).items() if k.lower() != "content-length"}
        return Response(payload, status_code=result["statusCode"], headers=headers)

    def _throttled(self, request: Request) -> Response | None:
        """The edge's rate rule: aggregated on the Authorization header, as the WAF rule is;
        a request without one is not counted (the app refuses it anyway)."""
        authorization = request.headers.get("authorization")
        wait = self.rate.retry_after(authorization) if authorization else None
        if wait is None:
            return None
        message = f"Over {self.rate.requests} requests in {self.rate.window:.0f} s with this key; retry after {wait} s."
        return _error(429, "rate_limit", message, {"Retry-After": str(wait)})

    def _preflight(self, resource: str) -> Response | None:
        """The answer API Gateway's mock integration gives an OPTIONS request on a CORS route."""
        entries = self.app.routes[resource]
        cors = next((entry.cors for entry in entries.values() if entry.cors), None)
        if cors is None:
            return None
        headers = {
            **cors.get_access_control_headers(),
            "Access-Control-Allow-Methods": ",".join(sorted([*entries, "OPTIONS"])),
        }
        return Response(status_code=200, headers=headers)

    def _rest_event(self, request: Request, resource: str, params: dict[str, str], body: bytes) -> dict[str, Any]:
        query: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            query.setdefault(key, []).append(value)
        try:
            text_body: str | None = body.decode()
        except UnicodeDecodeError:
            text_body = None  # passed on base64-encoded, as API Gateway does for binary bodies
        return {
            "resource": resource,
            "path": request.url.path,
            "httpMethod": request.method,
            "headers": dict(request.headers),
            "multiValueHeaders": {k: request.headers.getlist(k) for k in request.headers},
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": resource,
                "httpMethod": request.method,
                "path": f"/{self.stage}{request.url.path}",
                "stage": self.stage,
                "requestId": str(uuid.uuid4()),
                "requestTimeEpoch": _apigw_time(),
                "apiId": "local",
                "identity": {"sourceIp": request.client.host if request.client else "127.0.0.1"},
            },
            "body": text_body if text_body is not None else base64.b64encode(body).decode(),
            "isBase64Encoded": text_body is None,
        }

    # WebSocket -------------------------------------------------------------------------
    def _ws_event(
        self, route: str, kind: str, connection_id: str, websocket: WebSocket, body: str | None = None
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "requestContext": {
                "routeKey": route,
                "eventType": kind,
                "connectionId": connection_id,
                "domainName": self.host,
                "stage": self.stage,
                "apiId": "local",
                "requestId": str(uuid.uuid4()),
                "requestTimeEpoch": _apigw_time(),
                "identity": {"sourceIp": websocket.client.host if websocket.client else "127.0.0.1"},
            },
            "isBase64Encoded": False,
        }
        if kind == "CONNECT":
            event["headers"] = dict(websocket.headers)
            event["queryStringParameters"] = dict(websocket.query_params) or None
        if body is not None:
            event["body"] = body
        return event

    async def _invoke_ws(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        context = LambdaContext(function_name=f"dynavera-websocket_{name}")
        return await run_in_threadpool(self.ws_handlers[name], event, context) or {}

    async def websocket(self, websocket: WebSocket) -> None:
        connection_id = base64.urlsafe_b64encode(uuid.uuid4().bytes[:12]).decode()
        result = await self._invoke_ws("connect", self._ws_event("$connect", "CONNECT", connection_id, websocket))
        status = int(result.get("statusCode", 200))
        if status >= 300:
            refusal = Response(result.get("body") or "", status_code=status, headers=result.get("headers"))
            await websocket.send_denial_response(refusal)
            return
        await websocket.accept()
        self.clients[connection_id] = _Client(websocket, websocket.client.host if websocket.client else "")
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                self.clients[connection_id].last_active_at = datetime.now(UTC).isoformat()
                event = self._ws_event("$default", "MESSAGE", connection_id, websocket, message.get("text"))
                if message.get("text") is None:
                    # A binary frame reaches $default base64-encoded, as API Gateway passes it on.
                    event.update(body=base64.b64encode(message.get("bytes") or b"").decode(), isBase64Encoded=True)
                try:
                    await self._invoke_ws("message", event)
                except Exception:
                    # What API Gateway does when the $default Lambda fails: say so, stay open.
                    log.exception("the $default handler failed")
                    await websocket.send_text(
                        json.dumps({"message": "Internal server error", "connectionId": connection_id})
                    )
        except WebSocketDisconnect:
            pass
        finally:
            self.clients.pop(connection_id, None)
            await self._invoke_ws("disconnect", self._ws_event("$disconnect", "DISCONNECT", connection_id, websocket))

    # @connections ----------------------------------------------------------------------
    async def connections(self, request: Request) -> Response:
        connection_id = request.path_params["connection_id"]
        client = self.clients.get(connection_id)
        if client is None:
            return _gone()
        if request.method == "POST":
            data = await request.body()
            if len(data) > 128 * 1024:
                return JSONResponse(
                    {"message": "Payload too large"}, 413, headers={"x-amzn-ErrorType": "PayloadTooLargeException"}
                )
            try:
                async with client.send_lock:
                    await client.websocket.send_text(data.decode())
            except (RuntimeError, WebSocketDisconnect):
                self.clients.pop(connection_id, None)
                return _gone()
            return Response(status_code=200)
        if request.method == "DELETE":
            self.clients.pop(connection_id, None)
            await client.websocket.close()
            return Response(status_code=204)
        return JSONResponse(
            {
                "connectedAt": client.connected_at,
                "identity": {"sourceIp": client.source_ip},
                "lastActiveAt": client.last_active_at or client.connected_at,
            }
        )

    def asgi(self, upload_url: str | None = None) -> Any:
        """One app for both listeners; which one a request came in on decides what it may reach."""
        public = Starlette(
            routes=[
                WebSocketRoute("/ws", self.websocket),
                *console.routes(upload_url=upload_url),
                Route("/{path:path}", self.rest, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
            ],
            # A path no route matches (Starlette's path pattern stops at a newline) still answers
            # in the contract's shape.
            exception_handlers={404: lambda request, _: _error(404, "not_found", f"No route {request.url.path!r}.")},
        )
        management = Starlette(
            routes=[
                Route(
                    f"/{self.stage}/@connections/{{connection_id}}", self.connections, methods=["GET", "POST", "DELETE"]
                ),
            ]
        )

        async def app(scope: Any, receive: Any, send: Any) -> None:
            on_management = scope["type"] != "lifespan" and scope["server"][1] == self.management_port
            await (management if on_management else public)(scope, receive, send)

        return app


def create_gateway(host: str, port: int, management_port: int) -> Gateway:
    import app as app_module

    handlers = {
        "connect": app_module.ws_connect,
        "message": app_module.ws_message,
        "disconnect": app_module.ws_disconnect,
    }
    from chalicelib import usage

    # The limits app.py's wiring step set for this stage.
    rate = RateLimit(usage.current_limits().requests_per_window, RATE_WINDOW_SECONDS)
    return Gateway(app_module.app, handlers, app_module.settings.stage, f"{host}:{port}", management_port, rate)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the Chalice app as API Gateway would.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--management-port", type=int, default=8003, help="the @connections API, on loopback only")
    args = parser.parse_args()
    gateway = create_gateway(args.host, args.port, args.management_port)
    sockets = [_listen(args.host, args.port), _listen("127.0.0.1", args.management_port)]
    import app as app_module

    # The console's uploads go straight to the documents bucket: on the local AWS endpoint.
    asgi = gateway.asgi(upload_url=app_module.settings.aws_endpoint_url)
    server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", ws="websockets-sansio"))
    server.run(sockets=sockets)


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


if __name__ == "__main__":
    main()
