"""The web console as the local gateway serves it: the built files under /console/, a
config.json pointing at this gateway, and index.html for every deep link the console routes itself."""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

DIST = Path(__file__).resolve().parent.parent / "console" / "dist"
# Built assets carry a content hash in their names; index.html must always be asked for again.
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"


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
                raise
            response = FileResponse(index)
        immutable = path.startswith("assets/") and response.status_code == 200
        response.headers["Cache-Control"] = IMMUTABLE if immutable else NO_CACHE
        return response


def config(request: Request) -> JSONResponse:
    """What config.json says in AWS, for this gateway: the API and WebSocket on this origin."""
    origin = f"{request.url.scheme}://{request.url.netloc}"
    ws_scheme = "wss" if request.url.scheme == "https" else "ws"
    body = {"apiUrl": origin, "wsUrl": f"{ws_scheme}://{request.url.netloc}/ws"}
    return JSONResponse(body, headers={"Cache-Control": NO_CACHE})


def routes(dist: Path = DIST) -> list[BaseRoute]:
    return [
        Route("/console", lambda _: RedirectResponse("/console/", 308)),
        Route("/console/config.json", config),
        Mount("/console", app=ConsoleFiles(directory=dist, html=True, check_dir=False)),
    ]
