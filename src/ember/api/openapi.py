"""The one part of `/openapi.json` FastAPI cannot derive: a streamed chat completion's `text/event-stream` body.

Everything else comes from the models: request bodies from `ember.api.protocol`, answers from the routes'
`response_model`s (`ember.api.wire`), and every refusal from the routers' `responses=ERRORS` (the OpenAI
error envelope for 4XX and 5XX, which also keeps FastAPI from documenting a 422 that Ember never sends).
`STREAM` adds the event stream to the chat route's 200; `install` adds the schema of each event's JSON,
`ChatCompletionChunk`, to the components, where clients find it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from ember.api.wire import ChatCompletionChunk

REF = "#/components/schemas/{model}"
SSE_EVENT: dict[str, Any] = {
    "title": "ServerSentEvent",
    "description": (
        "One event of `stream: true`: its `data` is a ChatCompletionChunk as JSON, an ErrorResponse if the "
        "answer fails once the stream has begun, and last the literal `[DONE]`."
    ),
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string", "minLength": 1}},
}
STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {"schema": SSE_EVENT}}}  # OpenAPI 3.1: the schema of each event
}


def install(app: FastAPI) -> None:
    """Serve FastAPI's schema with `ChatCompletionChunk` (and the models it uses) among the components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "ChatCompletionChunk" not in components:
            chunk = ChatCompletionChunk.model_json_schema(ref_template=REF, mode="serialization")
            for name, sub in chunk.pop("$defs", {}).items():
                components.setdefault(name, sub)
            components["ChatCompletionChunk"] = chunk
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
