"""Refuse request bodies over a size cap before they are read: by Content-Length at once, and by
counting the bytes of a chunked upload as they arrive. Pure ASGI; it knows nothing of routes' meaning."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException

from ember.api.protocol import error_json

ASGIApp = Callable[..., Any]


def _message(limit: int) -> str:
    return f"The request body is larger than the limit of {limit / 2**20:.1f} MB."


class BodyLimit:
    """Cap each request body at `limit_for(path)` bytes; over it, answer 413 with the OpenAI envelope."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await _refuse(send, limit)
            return
        seen = 0

        async def counting_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # FastAPI lets HTTPException through its body parsing; the handler answers
                    raise HTTPException(413, _message(limit))
            return message

        await self.app(scope, counting_receive, send)


async def _refuse(send: Any, limit: int) -> None:
    body = json.dumps(error_json(_message(limit), "invalid_request_error", None, "payload_too_large")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
