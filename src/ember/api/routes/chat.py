"""`POST /v1/chat/completions`, streamed (SSE) or not.

Spoken parts (`input_audio`) are transcribed first; what was heard is returned in the Ember extension
field `input_transcripts` (top level of the completion, or of the first chunk when streaming). Modes that
cite sources return them in the extension field `citations` (top level, or on the chunk that carries them);
multi-agent modes asked for `include_trace` return their agents' passes in `trace` the same way, and
`ember-auto` returns the route it took, and why, in `route`.

The first delta is awaited before any response is sent, so request errors found by the engine (a
prompt beyond the context) are proper 4xx envelopes, not broken streams. When the client goes away, at
any point, the work is cancelled and the pipeline's iterator closed, which stops every generation and
sub-call made for it (llama.cpp: within a token once the prompt is read) and frees the admission place: while
the first delta is awaited (a program, a plan and its steps, contemplating's drafts may all come before it)
and while a non-streamed answer is collected, the route waits for the server's disconnect message
alongside (from the scope and limit checks on: speech is not transcribed for a client that left);
once a stream has begun, Starlette watches.

Scopes, rate limits, admission, intake and the pipeline are `ember.serving.chat`'s; this route parses the
body, watches for the client's disconnect and writes the answer as JSON or as server-sent events. The
request's exit stack (its streams slot, admission place and answer) is closed once the answer is over,
however it ended: by a streamed response when it is done.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable
from contextlib import AsyncExitStack
from enum import Enum
from typing import Any, Literal, TypeVar

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ember.api.deps import ChatServingDep, PrincipalDep
from ember.api.openapi import STREAM
from ember.api.protocol import (
    ChatCompletionRequest,
    chunk_json,
    completion_id,
    completion_json,
    error_json,
    to_chat_request,
    turns_of,
)
from ember.api.wire import ERRORS, ChatCompletion
from ember.errors import EmberError
from ember.serving.chat import Served
from ember.types import Delta, Usage

log = logging.getLogger(__name__)
router = APIRouter(responses=ERRORS)
DISCONNECT_RETRY_S = 0.25
T = TypeVar("T")


class _ClosingStream(StreamingResponse):
    """A streamed response that closes `cleanup` once it is over, however it ended: when the client
    leaves before the body starts, Starlette never iterates it, so a generator's `finally` is not enough."""

    def __init__(self, content: AsyncGenerator[bytes, None], cleanup: AsyncExitStack, headers: dict[str, str]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self.cleanup = cleanup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.cleanup.aclose()


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=STREAM)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, serving: ChatServingDep, principal: PrincipalDep
) -> Response:
    if body.model_extra:
        log.info("ignoring unknown request fields: %s", body.extra_field_names())
    chat = to_chat_request(body, principal.person(body.user))
    async with AsyncExitStack() as stack:
        served = await _unless_gone(request, serving.start(chat, turns_of(body), principal, stack))
        if served is _Left.LEFT:
            return Response(status_code=499)
        extra: dict[str, Any] = {"input_transcripts": served.heard} if served.heard else {}
        cid = completion_id()
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events = _sse(cid, body.model, served, include_usage, extra)
            stack.push_async_callback(events.aclose)
            return _ClosingStream(events, stack.pop_all(), served.headers)
        answer = await _unless_gone(request, served.rest())
    if answer is _Left.LEFT:
        return Response(status_code=499)
    if answer.citations:
        extra["citations"] = [c.as_dict() for c in answer.citations]
    if answer.trace:
        extra["trace"] = [step.as_dict() for step in answer.trace]
    if answer.route is not None:
        extra["route"] = answer.route.as_dict()
    usage = answer.usage or Usage()
    payload = completion_json(cid, body.model, answer.text, answer.thought, answer.finish_reason, usage, extra)
    return JSONResponse(payload, headers=served.headers)


class _Left(Enum):
    """What `_unless_gone` returns when the client disconnected first."""

    LEFT = "left"


async def _unless_gone(request: Request, work: Awaitable[T]) -> T | Literal[_Left.LEFT]:
    """`work`'s result, or LEFT if the client disconnects first: `work` is then cancelled, and with it every
    sub-call it made (generations, a plan's steps, contemplating's agents). An exception `work` raises comes
    out as itself."""
    result: T | Literal[_Left.LEFT] = _Left.LEFT
    error: Exception | None = None
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            # The body is read, so the server's next message is the disconnect (uvicorn sends it the moment the
            # connection drops); a server that answers with anything else at once is asked again a little later.
            while (await request.receive())["type"] != "http.disconnect":  # noqa: ASYNC110
                await anyio.sleep(DISCONNECT_RETRY_S)
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        try:
            result = await work
        except Exception as exc:  # not wrapped in an ExceptionGroup: the error handlers map it
            error = exc
        tg.cancel_scope.cancel()
    if error is not None:
        raise error
    return result


def _event(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


async def _sse(
    cid: str, model: str, served: Served, include_usage: bool, extra: dict[str, Any]
) -> AsyncGenerator[bytes, None]:
    created = int(time.time())
    try:
        yield _event(chunk_json(cid, model, created, Delta(), role=True, extra=extra))
        delta = served.first
        while delta is not None:
            if delta.content or delta.reasoning or delta.finish_reason or delta.citations or delta.trace or delta.route:
                yield _event(chunk_json(cid, model, created, delta))  # extensions may ride on a usage-only delta
            delta = await anext(served.deltas, None)
        if include_usage:
            yield _event(chunk_json(cid, model, created, None, usage=served.answer.usage or Usage()))
    except EmberError as exc:  # headers are sent: report in-band, as OpenAI-compatible servers do
        yield _event(error_json(exc.message, exc.type, exc.param, exc.code))
    finally:
        with anyio.CancelScope(shield=True):
            await served.deltas.aclose()
    yield _event("[DONE]")
