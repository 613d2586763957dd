"""The Responses API: `POST /v1/responses` (streamed as typed server-sent events, or not), `GET` and `DELETE
/v1/responses/{id}` and `GET /v1/responses/{id}/input_items`.

A response is answered on the chat path (`ember.serving.responses`, then `ChatServing`); this module parses
the body, watches for the client's disconnect as chat does, and writes the response object or its events:
`response.created`, `response.in_progress`, each output item's events (`ember.serving.response_items`), then
`response.completed` (or `response.incomplete` when the answer stopped at `max_output_tokens`), each with an
`event:` line and a `sequence_number`. Errors before the first event are HTTP errors in the OpenAI envelope;
an error after it is an `error` event, then `response.failed`. A stored response is committed before the
client hears it is done. Reading, listing and deleting take the `chat` scope and reach the person `user`
(a query parameter, as for conversations) names in the key's tenant; another person's id is 404, as an
unknown one is.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter

from ember.api.deps import ChatPrincipal, PrincipalDep, ResponsesServingDep
from ember.api.openapi import RESPONSE_STREAM
from ember.api.responses_protocol import ResponseCreateRequest, input_item_list, response_object, to_spec
from ember.api.responses_wire import InputItemList, ResponseDeleted, ResponseObject, StreamEvent
from ember.api.routes.conversations import UserQuery
from ember.api.streaming import ClosingStream, Left, unless_gone
from ember.api.wire import ERRORS
from ember.errors import EmberError
from ember.serving.response_items import Output, output_items, status_of
from ember.serving.responses import ResponsesServing, StartedResponse
from ember.store.responses import Item, StoredResponse
from ember.types import Usage

log = logging.getLogger(__name__)
router = APIRouter(responses=ERRORS)
EVENT = TypeAdapter[Any](StreamEvent)
FAILED_CODES = frozenset({"rate_limit_exceeded", "invalid_image"})  # ours that OpenAI's `error.code` also has


@router.post("/v1/responses", response_model=ResponseObject, responses=RESPONSE_STREAM)
async def create_response(
    body: ResponseCreateRequest, request: Request, serving: ResponsesServingDep, principal: PrincipalDep
) -> Response:
    if body.model_extra:
        log.info("ignoring unknown request fields: %s", body.extra_field_names())
    spec = to_spec(body, principal.person(body.user))
    async with AsyncExitStack() as stack:
        started = await unless_gone(request, serving.start(spec, principal, stack))
        if started is Left.LEFT:
            return Response(status_code=499)
        if body.stream:
            events = _sse(started, serving)
            stack.push_async_callback(events.aclose)
            return ClosingStream(events, stack.pop_all(), started.served.headers)
        answer = await unless_gone(request, started.served.rest())
        if answer is Left.LEFT:
            return Response(status_code=499)
        output = output_items(answer)
        stored = await serving.finish(started, output)
    shown = _shown(started, status_of(answer), output, answer.usage or Usage(), stored)
    return JSONResponse(shown.wire(), headers=started.served.headers)


@router.get("/v1/responses/{response_id}")
async def get_response(
    response_id: str, serving: ResponsesServingDep, principal: ChatPrincipal, user: UserQuery = None
) -> ResponseObject:
    return _stored(await serving.get(response_id, principal.person(user)))


@router.delete("/v1/responses/{response_id}")
async def delete_response(
    response_id: str, serving: ResponsesServingDep, principal: ChatPrincipal, user: UserQuery = None
) -> ResponseDeleted:
    await serving.delete(response_id, principal.person(user))
    return ResponseDeleted(id=response_id, deleted=True)


@router.get("/v1/responses/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    serving: ResponsesServingDep,
    principal: ChatPrincipal,
    user: UserQuery = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: Annotated[str | None, Query(max_length=64, description="an item id: the page starts after it")] = None,
) -> InputItemList:
    stored = await serving.get(response_id, principal.person(user))
    return input_item_list(stored.input, limit, order, after)


def _shown(
    started: StartedResponse,
    status: str,
    output: list[Item],
    usage: Usage | None,
    store: bool,
    error: dict[str, str] | None = None,
) -> ResponseObject:
    """The response object of a response being answered."""
    spec = started.spec
    return response_object(
        response_id=started.id,
        created_at=started.created_at,
        model=spec.request.model,
        status=status,
        output=output,
        usage=usage,
        previous_id=spec.previous_id,
        settings=spec.settings,
        store=store,
        error=error,
    )


def _stored(stored: StoredResponse) -> ResponseObject:
    return response_object(
        response_id=stored.id,
        created_at=stored.created_at,
        model=stored.model,
        status=stored.status,
        output=stored.output,
        usage=stored.usage,
        previous_id=stored.previous_id,
        settings=stored.settings,
        store=True,
    )


async def _sse(started: StartedResponse, serving: ResponsesServing) -> AsyncGenerator[bytes, None]:
    """The response's events, numbered; the response is stored before its last event."""
    numbers = itertools.count()

    def frame(event: dict[str, Any]) -> bytes:
        data = EVENT.validate_python({**event, "sequence_number": next(numbers)}).wire()
        return f"event: {data['type']}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

    served, output = started.served, Output()
    try:
        opened = _shown(started, "in_progress", [], None, started.keep)
        yield frame({"type": "response.created", "response": opened})
        yield frame({"type": "response.in_progress", "response": opened})
        delta = served.first
        while delta is not None:
            for event in output.add(delta):
                yield frame(event)
            delta = await anext(served.deltas, None)
        for event in output.finish(served.answer):
            yield frame(event)
        stored = await serving.finish(started, output.items)
        done = _shown(started, status_of(served.answer), output.items, served.answer.usage or Usage(), stored)
        yield frame({"type": f"response.{done.status}", "response": done})
    except EmberError as exc:  # headers are sent: report in-band, as OpenAI does
        yield frame({"type": "error", "code": exc.code, "message": exc.message, "param": exc.param})
        code = exc.code if exc.code in FAILED_CODES else "server_error"
        failed = _shown(started, "failed", output.items, None, False, {"code": code, "message": exc.message})
        yield frame({"type": "response.failed", "response": failed})
    finally:
        with anyio.CancelScope(shield=True):
            await served.deltas.aclose()
