"""The web UI: `GET /` serves the chat page and `/web/…` its files: plain HTML, CSS and JavaScript modules
shipped as package data in `ember/api/web/`. Nothing is built at run time and nothing is loaded from
anywhere but this server, so the page works offline.

Every response from here carries a strict Content-Security-Policy (scripts, styles and connections from this
server only; no inline scripts, styles or event handlers; images and audio may also be the `data:`/`blob:`
URLs of attachments and recordings) and asks browsers to revalidate, so an upgrade is seen at once. The page
is a client of the public API like any other: it needs no key to load, and sends the one a person enters
with its API calls. This module serves files; it holds no state and does not read the API's data.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
MOUNT = "/web"
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' data: blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)


class _WebFiles(StaticFiles):
    """Static files with the page's security and caching headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def install(app: FastAPI) -> None:
    """Serve the page at `/` and its files under `/web`."""
    app.include_router(router)
    app.mount(MOUNT, _WebFiles(directory=WEB_DIR), name="web")
