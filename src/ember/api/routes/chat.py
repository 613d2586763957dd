"""`POST /v1/chat/completions`, streamed (SSE) or not.

Spoken parts (`input_audio`) are transcribed first; what was heard is returned in the Ember extension
field `input_transcripts` (top level of the completion, or of the first chunk when streaming).

The first delta is awaited before any response is sent, so request errors found by the engine (a
prompt beyond the context) are proper 4xx envelopes, not broken streams. When the client goes away,
the pipeline's iterator is closed, which stops the generation and frees the engine.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ember.api.deps import PipelineDep, PrincipalDep, SettingsDep
from ember.api.protocol import (
    ChatCompletionRequest,
    chunk_json,
    completion_id,
    completion_json,
    error_json,
    to_chat_request,
)
from ember.errors import EmberError
from ember.intake.chat import transcribe_audio_parts
from ember.types import Delta, Usage

log = logging.getLogger(__name__)
router = APIRouter()
DISCONNECT_POLL_S = 0.25


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    pipeline: PipelineDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> Response:
    principal.require("chat")
    if body.model_extra:
        log.info("ignoring unknown request fields: %s", ", ".join(sorted(body.model_extra)))
    pipeline.mode(body.model)  # an unknown model fails before any audio is transcribed
    heard = await transcribe_audio_parts(body, pipeline, settings)
    extra = {"input_transcripts": heard} if heard else {}
    chat = to_chat_request(body, principal.person(body.user))
    conversation_id = await pipeline.open(chat)
    deltas = pipeline.chat(chat)
    try:
        first = await anext(deltas, None)
    except BaseException:
        await deltas.aclose()
        raise
    headers = {"x-ember-conversation-id": conversation_id}
    cid = completion_id()
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = _sse(cid, body.model, first, deltas, include_usage, extra)
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    result = await _collect_unless_gone(request, first, deltas)
    if result is None:
        return Response(status_code=499)
    content, reasoning, finish, usage = result
    return JSONResponse(completion_json(cid, body.model, content, reasoning, finish, usage, extra), headers=headers)


async def _collect(first: Delta | None, deltas: AsyncGenerator[Delta, None]) -> tuple[str, str, str | None, Usage]:
    content, reasoning, finish, usage = [], [], None, Usage()
    delta = first
    while delta is not None:
        content.append(delta.content)
        reasoning.append(delta.reasoning)
        finish = delta.finish_reason or finish
        usage = delta.usage or usage
        delta = await anext(deltas, None)
    return "".join(content), "".join(reasoning), finish, usage


async def _collect_unless_gone(
    request: Request, first: Delta | None, deltas: AsyncGenerator[Delta, None]
) -> tuple[str, str, str | None, Usage] | None:
    """Collect the whole answer, but stop generating if the client disconnects meanwhile."""
    result = None
    try:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                # Starlette offers no disconnect event for a plain request: poll.
                while not await request.is_disconnected():  # noqa: ASYNC110
                    await anyio.sleep(DISCONNECT_POLL_S)
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            result = await _collect(first, deltas)
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await deltas.aclose()
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
) -> AsyncIterator[bytes]:
    created = int(time.time())
    usage = Usage()
    try:
        yield _event(chunk_json(cid, model, created, Delta(), role=True, extra=extra))
        delta = first
        while delta is not None:
            usage = delta.usage or usage
            if delta.content or delta.reasoning or delta.finish_reason:
                yield _event(chunk_json(cid, model, created, delta))
            delta = await anext(deltas, None)
        if include_usage:
            yield _event({**chunk_json(cid, model, created, None), "usage": usage.as_dict()})
    except EmberError as exc:  # headers are sent: report in-band, as OpenAI-compatible servers do
        yield _event(error_json(exc.message, exc.type, exc.param, exc.code))
    finally:
        with anyio.CancelScope(shield=True):
            await deltas.aclose()
    yield _event("[DONE]")
