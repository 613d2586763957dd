"""`GET /docs`: the API reference, Swagger UI drawing `/openapi.json`, served whole from this server.

The web UI keeps a person's API key in localStorage on this origin, so no page here loads a script from
anywhere else: the page (`ember/api/web/docs.html`, with its set-up in `web/js/docs.js`) and Swagger UI's
two files, which come from the `fastapi-offline` package, are served with the web UI's headers and strict
Content-Security-Policy (`ember.api.routes.web`). FastAPI's own `/docs` and `/redoc` pages (scripts from a
CDN, inline set-up code) are turned off in `create_app`; ReDoc is not served, as it needs inline styles.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from ember.api.routes.web import HEADERS, WEB_DIR

SWAGGER_DIR = Path(str(resources.files("fastapi_offline") / "static"))
SWAGGER_FILES = {  # name: media type; nothing else from the package is served
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs() -> FileResponse:
    return FileResponse(WEB_DIR / "docs.html", media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/docs/{name}")
async def swagger_file(name: str) -> FileResponse:
    if name not in SWAGGER_FILES:
        raise HTTPException(404, "Not Found")
    return FileResponse(SWAGGER_DIR / name, media_type=SWAGGER_FILES[name], headers=HEADERS)
