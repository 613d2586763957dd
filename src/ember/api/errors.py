"""Turn every failure into the OpenAI error envelope `{"error": {message, type, param, code}}`.

The only place EmberError becomes HTTP. Validation errors are 400 (never 422); unknown failures are a
500 with no internals in the message (the traceback goes to the log, without request content).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ember.api.protocol import error_json
from ember.errors import EmberError

log = logging.getLogger(__name__)


def ember_error_response(exc: EmberError) -> JSONResponse:
    return JSONResponse(
        error_json(exc.message, exc.type, exc.param, exc.code), status_code=exc.status, headers=exc.headers or None
    )


def _validation_message(err: dict[str, Any]) -> tuple[str, str | None]:
    loc = [str(p) for p in err.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    if err.get("type") == "json_invalid":
        return (
            f"We could not parse the JSON body of your request: {err.get('ctx', {}).get('error', '')}",
            None,
        )
    if param is None:
        return f"The request body is invalid: {err.get('msg')}", None
    return f"Invalid value for '{param}': {err.get('msg')}", param


def install(app: FastAPI) -> None:
    @app.exception_handler(EmberError)
    async def _ember(_: Request, exc: EmberError) -> JSONResponse:
        if exc.status >= 500:
            log.error("%s: %s", type(exc).__name__, exc.message)
        return ember_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        # of a union's alternatives, the one that got furthest names the real problem
        deepest = max(errors, key=lambda e: len(e.get("loc", ())), default=None)
        message, param = _validation_message(dict(deepest)) if deepest else ("Invalid request", None)
        return JSONResponse(error_json(message, "invalid_request_error", param, "invalid_value"), status_code=400)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code)
        return JSONResponse(error_json(str(exc.detail), type_, None, code), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            error_json("The server had an error while processing your request.", "server_error", None, None),
            status_code=500,
        )
