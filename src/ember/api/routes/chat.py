"""`POST /v1/chat/completions`, streamed (SSE) or not.

Spoken parts (`input_audio`) are transcribed first; what was heard is returned in the Ember extension
field `input_transcripts` (top level of the completion, or of the first chunk when streaming). Modes that
cite sources return them in the extension field `citations` (top level, or on the chunk that carries them);
multi-agent modes asked for `include_trace` return their agents' passes in `trace` the same way,
`ember-auto` returns the route it took, and why, in `route`, and with the person's `memory` consent on, a message
that states a durable fact about them ("I'm vegetarian") gets `memory_proposal` (`{"text", "kind"}`: top level,
or on a chunk of its own after the finish when streaming), which the client may offer to save through
`POST /v1/me/memories`; nothing is kept until it does.

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
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ember.api.deps import ChatServingDep, PrincipalDep
from ember.api.openapi import STREAM
from ember.api.protocol import (
    ChatCompletionRequest,
    chunk_json,
    completion_id,
    completion_json,
    error_json,
    extensions,
    to_chat_request,
    turns_of,
)
from ember.api.streaming import ClosingStream, Left, unless_gone
from ember.api.wire import ERRORS, ChatCompletion
from ember.errors import EmberError
from ember.serving.chat import Served
from ember.types import Delta, Usage

log = logging.getLogger(__name__)
router = APIRouter(responses=ERRORS)


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=STREAM)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, serving: ChatServingDep, principal: PrincipalDep
) -> Response:
    if body.model_extra:
        log.info("ignoring unknown request fields: %s", body.extra_field_names())
    chat = to_chat_request(body, principal.person(body.user))
    async with AsyncExitStack() as stack:
        served = await unless_gone(request, serving.start(chat, turns_of(body), principal, stack))
        if served is Left.LEFT:
            return Response(status_code=499)
        extra: dict[str, Any] = {"input_transcripts": served.heard} if served.heard else {}
        cid = completion_id()
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events = _sse(cid, body.model, served, include_usage, extra)
            stack.push_async_callback(events.aclose)
            return ClosingStream(events, stack.pop_all(), served.headers)
        answer = await unless_gone(request, served.rest())
    if answer is Left.LEFT:
        return Response(status_code=499)
    payload = completion_json(cid, body.model, answer, {**extra, **extensions(answer)})
    return JSONResponse(payload, headers=served.headers)


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
            if delta.content or delta.reasoning or delta.tool_calls or delta.finish_reason or delta.extends:
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
