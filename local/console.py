"""The web console as the local gateway serves it: the built files under /console/, a
config.json pointing at this gateway, and index.html for every deep link the console routes
itself; every answer with the console's security headers (CloudFront sends the same ones,
infra/console.yaml)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DIST = Path(__file__).resolve().parent.parent / "console" / "dist"
# Built assets carry a content hash in their names; index.html must always be asked for again.
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"


def content_security_policy(api_url: str, ws_url: str, upload_origins: str = "") -> str:
    """The console's own files, and connections to the API and WebSocket it uses and to the
    documents bucket its uploads go to (presigned POSTs): nothing else runs, loads or frames it.
    The API key sits in localStorage; this keeps an injected script from running, and from
    sending anything elsewhere if one did."""
    origins = ("'self'", _origin(api_url), _origin(ws_url), *upload_origins.split())
    connect = " ".join(origin for origin in origins if origin)
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
        f"connect-src {connect}; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def security_headers(api_url: str, ws_url: str, upload_origins: str = "") -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(api_url, ws_url, upload_origins),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _urls(scheme: str, netloc: str) -> tuple[str, str]:
    """The API and WebSocket URLs of this gateway, as config.json gives them to the console."""
    ws_scheme = "wss" if scheme == "https" else "ws"
    return f"{scheme}://{netloc}", f"{ws_scheme}://{netloc}/ws"


class SecurityHeaders:
    """Adds the console's security headers to every answer under /console."""

    def __init__(self, app: ASGIApp, upload_origins: str = "") -> None:
        self.app = app
        self.upload_origins = upload_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api_url, ws_url = _urls(scope.get("scheme", "http"), Headers(scope=scope).get("host", ""))
        headers = security_headers(api_url, ws_url, self.upload_origins)

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, send_secured)


class ConsoleFiles(StaticFiles):
    """Static files with the SPA fallback: a path with no file behind it gets index.html."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        index = Path(str(self.directory)) / "index.html"
        if not index.is_file():
            return PlainTextResponse("The console is not built: run `make console` (needs Node.js 20+ and npm).", 503)
        try:
            response = await super().get_response(path, scope)
        except HTTPException as err:
            if err.status_code != 404 or "." in path.rsplit("/", 1)[-1]:
                # Answered here, not raised past the security headers' middleware.
                return PlainTextResponse(err.detail, err.status_code, headers={"Cache-Control": NO_CACHE})
            response = FileResponse(index)
        immutable = path.startswith("assets/") and response.status_code == 200
        response.headers["Cache-Control"] = IMMUTABLE if immutable else NO_CACHE
        return response


def config(request: Request) -> JSONResponse:
    """What config.json says in AWS, for this gateway: the API and WebSocket on this origin."""
    api_url, ws_url = _urls(request.url.scheme, request.url.netloc)
    return JSONResponse({"apiUrl": api_url, "wsUrl": ws_url}, headers={"Cache-Control": NO_CACHE})


def routes(dist: Path = DIST, upload_url: str | None = None) -> list[BaseRoute]:
    """The console's routes; `upload_url` is where its presigned uploads go (the local endpoint)."""
    secured = [Middleware(SecurityHeaders, upload_origins=_origin(upload_url or ""))]
    return [
        Route("/console", lambda _: RedirectResponse("/console/", 308)),
        Route("/console/config.json", config, middleware=secured),
        Mount("/console", app=ConsoleFiles(directory=dist, html=True, check_dir=False), middleware=secured),
    ]
