"""The parts of `/openapi.json` FastAPI cannot derive: the `text/event-stream` bodies of a streamed chat
completion and of a streamed response.

Everything else comes from the models: request bodies from `ember.api.protocol` (and
`ember.api.responses_protocol`), answers from the routes' `response_model`s (`ember.api.wire`,
`ember.api.responses_wire`), and every refusal from the routers' `responses=ERRORS` (the OpenAI error
envelope for 4XX and 5XX, which also keeps FastAPI from documenting a 422 that Ember never sends).
`STREAM` adds the event stream to the chat route's 200 and `RESPONSE_STREAM` to the responses route's;
`install` adds the schema of each event's JSON, `ChatCompletionChunk` and `ResponseStreamEvent`, to the
components, where clients find them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import TypeAdapter

from ember.api.responses_wire import StreamEvent
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
RESPONSE_SSE_EVENT: dict[str, Any] = {
    "title": "ResponseServerSentEvent",
    "description": (
        "One event of a streamed response: `event` is its type and `data` a ResponseStreamEvent as JSON, "
        "from `response.created` to `response.completed` (or `response.incomplete`, or `error` then "
        "`response.failed`)."
    ),
    "type": "object",
    "required": ["event", "data"],
    "properties": {"event": {"type": "string", "minLength": 1}, "data": {"type": "string", "minLength": 1}},
}
RESPONSE_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {"schema": RESPONSE_SSE_EVENT}}}
}
EVENT_SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {  # made when the document is first asked for
    "ChatCompletionChunk": lambda: ChatCompletionChunk.model_json_schema(ref_template=REF, mode="serialization"),
    "ResponseStreamEvent": lambda: TypeAdapter[Any](StreamEvent).json_schema(ref_template=REF, mode="serialization"),
}


def install(app: FastAPI) -> None:
    """Serve FastAPI's schema with each stream's event schema (and the models it uses) among the components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, make in EVENT_SCHEMAS.items():
            if name not in components:
                event = make()
                for sub_name, sub in event.pop("$defs", {}).items():
                    components.setdefault(sub_name, sub)
                components[name] = event
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
