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
alongside (from the wait for an admission place on: speech is not transcribed for a client that left);
once a stream has begun, Starlette watches.

Rate limits (`ember.policy.limits`) are checked after the scopes (the mode's, and `audio` for a request
with `input_audio` parts) and before any audio is heard; the
request holds a concurrent-streams slot until its answer is over, and the answer's weighted tokens are
debited then, whether it finished, failed or the client left. It then takes a place in the server's
admission limit (`ember.api.admission`: 503 `server_busy` at once when full), also held until the answer
is over. All of these happen in one exit stack that a streamed response closes once it is done, however
it ended.
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

from ember.api.deps import AdmissionDep, LimiterDep, PipelineDep, PrincipalDep, SettingsDep
from ember.api.openapi import STREAM
from ember.api.protocol import (
    ChatCompletionRequest,
    TextPart,
    chunk_json,
    completion_id,
    completion_json,
    error_json,
    to_chat_request,
)
from ember.api.wire import ERRORS, ChatCompletion
from ember.errors import EmberError
from ember.intake.chat import has_audio, transcribe_audio_parts
from ember.modes.base import scope_of
from ember.policy.keys import Principal
from ember.policy.limits import Limiter, Meter, cost_weight, estimate_tokens
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
    body: ChatCompletionRequest,
    request: Request,
    pipeline: PipelineDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    limiter: LimiterDep,
    admission: AdmissionDep,
) -> Response:
    if body.model_extra:
        log.info("ignoring unknown request fields: %s", body.extra_field_names())
    mode = pipeline.mode(body.model)  # an unknown model fails before any limit is spent or audio heard
    principal.require(scope_of(mode))  # a mode may need its own scope (ember-health: health)
    if has_audio(body):
        principal.require("audio")  # speech to text is the audio scope's, in chat as in transcriptions
    meter = Meter(estimate_tokens(_prompt_chars(body)), cost_weight(mode))
    quota = await limiter.check(principal, meter.estimated)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(limiter.stream(principal))
        stack.push_async_callback(_debit, limiter, principal, meter)

        async def start() -> tuple[list[dict[str, Any]], str, AsyncGenerator[Delta, None], Delta | None]:
            await stack.enter_async_context(admission.hold())  # a client that leaves while waiting leaves the queue
            heard = await transcribe_audio_parts(body, pipeline, settings)
            chat = to_chat_request(body, principal.person(body.user))
            chat.scopes = principal.scopes
            conversation_id = await pipeline.open(chat)
            deltas = meter.watch(pipeline.chat(chat))
            stack.push_async_callback(deltas.aclose)
            return heard, conversation_id, deltas, await anext(deltas, None)

        started = await _unless_gone(request, start())
        if started is _Left.LEFT:
            return Response(status_code=499)
        heard, conversation_id, deltas, first = started
        extra: dict[str, Any] = {"input_transcripts": heard} if heard else {}
        stored = {"x-ember-conversation-id": conversation_id} if conversation_id else {}  # none: not kept
        headers = {**stored, **quota.headers()}
        cid = completion_id()
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events = _sse(cid, body.model, first, deltas, include_usage, extra)
            stack.push_async_callback(events.aclose)
            return _ClosingStream(events, stack.pop_all(), headers)
        result = await _unless_gone(request, _collect(first, deltas))
    if result is _Left.LEFT:
        return Response(status_code=499)
    content, reasoning, finish, usage, last = result
    if last.citations:
        extra["citations"] = [c.as_dict() for c in last.citations]
    if last.trace:
        extra["trace"] = [step.as_dict() for step in last.trace]
    if last.route is not None:
        extra["route"] = last.route.as_dict()
    return JSONResponse(completion_json(cid, body.model, content, reasoning, finish, usage, extra), headers=headers)


def _prompt_chars(body: ChatCompletionRequest) -> int:
    """The length of the prompt's text (audio is not heard yet)."""
    return sum(
        len(m.content)
        if isinstance(m.content, str)
        else sum(len(p.text) for p in m.content or [] if isinstance(p, TextPart))
        for m in body.messages
    )


async def _debit(limiter: Limiter, principal: Principal, meter: Meter) -> None:
    with anyio.CancelScope(shield=True):
        await limiter.debit(principal, meter.tokens)


Answer = tuple[str, str, str | None, Usage, Delta]  # the last element holds citations, trace and route


async def _collect(first: Delta | None, deltas: AsyncGenerator[Delta, None]) -> Answer:
    content, reasoning, finish, usage = [], [], None, Usage()
    extensions = Delta()
    delta = first
    while delta is not None:
        content.append(delta.content)
        reasoning.append(delta.reasoning)
        finish = delta.finish_reason or finish
        usage = delta.usage or usage
        extensions.citations = delta.citations or extensions.citations
        extensions.trace = delta.trace or extensions.trace
        extensions.route = delta.route or extensions.route
        delta = await anext(deltas, None)
    return "".join(content), "".join(reasoning), finish, usage, extensions


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
    cid: str,
    model: str,
    first: Delta | None,
    deltas: AsyncGenerator[Delta, None],
    include_usage: bool,
    extra: dict[str, Any],
) -> AsyncGenerator[bytes, None]:
    created = int(time.time())
    usage = Usage()
    try:
        yield _event(chunk_json(cid, model, created, Delta(), role=True, extra=extra))
        delta = first
        while delta is not None:
            usage = delta.usage or usage
            if delta.content or delta.reasoning or delta.finish_reason or delta.citations or delta.trace or delta.route:
                yield _event(chunk_json(cid, model, created, delta))  # extensions may ride on a usage-only delta
            delta = await anext(deltas, None)
        if include_usage:
            yield _event(chunk_json(cid, model, created, None, usage=usage))
    except EmberError as exc:  # headers are sent: report in-band, as OpenAI-compatible servers do
        yield _event(error_json(exc.message, exc.type, exc.param, exc.code))
    finally:
        with anyio.CancelScope(shield=True):
            await deltas.aclose()
    yield _event("[DONE]")
