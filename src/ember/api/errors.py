"""Turn every failure into the OpenAI error envelope `{"error": {message, type, param, code}}`.

The only place EmberError becomes HTTP. Validation errors are 400 (never 422); unknown failures are a
500 with no internals in the message (the traceback goes to the log with each exception's type and frames
but not its message, which can quote request content; `ember.api.log_safety`). A 5xx EmberError is logged
by its type and message, escaped onto one line and cut short.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ember.api.log_safety import frames_only, one_line
from ember.api.protocol import error_json
from ember.errors import EmberError, ServerBusy, shown

log = logging.getLogger(__name__)
MAX_LOGGED_MESSAGE = 300  # characters of a 5xx EmberError's message in its log line
_LOCATIONS = {"body", "query", "path", "header", "cookie"}  # where FastAPI found a value: not part of its name
_NOT_AN_OBJECT = {"model_attributes_type", "model_type", "dict_type"}
_BRANCH_LABELS = {"str", "int", "float", "bool", "list", "dict", "none"}  # union branches pydantic names in `loc`


def ember_error_response(exc: EmberError) -> JSONResponse:
    return JSONResponse(
        error_json(exc.message, exc.type, exc.param, exc.code), status_code=exc.status, headers=exc.headers or None
    )


def _clean_loc(loc: Any) -> list[str]:
    """The field path a person wrote: without FastAPI's `body` or `query`, pydantic's union branch labels (`str`,
    `list[tagged-union[…]]`) and a tagged union's tag."""
    out: list[str] = []
    tag_next = False
    for part in loc:
        if isinstance(part, int):
            out.append(str(part))
        elif part in _LOCATIONS and not out:
            continue
        elif "[" in part or part in _BRANCH_LABELS:
            tag_next = tag_next or "tagged-union[" in part
        elif tag_next:
            tag_next = False  # the tag that chose the union's branch, not a field
        else:
            out.append(part)
    return out


def _validation_message(err: dict[str, Any]) -> tuple[str, str | None]:
    param = ".".join(_clean_loc(err.get("loc", ()))) or None
    ctx = err.get("ctx", {})
    if err.get("type") == "json_invalid":
        return f"We could not parse the JSON body of your request: {ctx.get('error', '')}", None
    if err.get("type") == "union_tag_invalid":
        return (
            f"Invalid value for '{param}': unknown {ctx.get('discriminator', 'type')} {shown(str(ctx.get('tag')))}; "
            f"this server reads {ctx.get('expected_tags')}",
            param,
        )
    if err.get("type") == "union_tag_not_found":
        return f"Invalid value for '{param}': it needs a {ctx.get('discriminator', 'type')} field", param
    if param is None and err.get("type") == "missing":
        return "The request body is empty: send a JSON object.", None
    if param is None and err.get("type") in _NOT_AN_OBJECT:
        return "The request body must be a JSON object, sent as application/json.", None
    if param is None:
        return f"The request body is invalid: {err.get('msg')}", None
    return f"Invalid value for '{param}': {err.get('msg')}", param


def _parse_failure(exc: HTTPException) -> str:
    """Why FastAPI could not read a body, in words (it says only "There was an error parsing the body")."""
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return f"The request body is not valid UTF-8 text (byte {cause.start}); send JSON encoded as UTF-8."
    if isinstance(cause, RecursionError):
        return "The JSON body is nested too deeply to be read."
    return f"The request body could not be read: {exc.detail}"


def install(app: FastAPI) -> None:
    @app.exception_handler(EmberError)
    async def _ember(_: Request, exc: EmberError) -> JSONResponse:
        if exc.status >= 500:  # a full server is expected under load: a warning, not an error
            level = logging.WARNING if isinstance(exc, ServerBusy) else logging.ERROR
            log.log(level, "%s: %s", type(exc).__name__, one_line(exc.message, MAX_LOGGED_MESSAGE))
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
        message = str(exc.detail)
        if exc.status_code == 400 and exc.__cause__ is not None:  # FastAPI failed to read the body
            message, code = _parse_failure(exc), "invalid_value"
        return JSONResponse(error_json(message, type_, None, code), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error\n%s", frames_only(exc))
        return JSONResponse(
            error_json("The server had an error while processing your request.", "server_error", None, None),
            status_code=500,
        )
