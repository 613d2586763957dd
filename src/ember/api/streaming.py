"""What the chat and responses routes share: a streamed response that releases what its request holds however
it ends (`ClosingStream`), and awaiting work unless the client disconnects first (`unless_gone`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable
from contextlib import AsyncExitStack
from enum import Enum
from typing import Literal, TypeVar

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

DISCONNECT_RETRY_S = 0.25
T = TypeVar("T")


class ClosingStream(StreamingResponse):
    """A server-sent event stream that closes `cleanup` once it is over, however it ended: when the client
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


class Left(Enum):
    """What `unless_gone` returns when the client disconnected first."""

    LEFT = "left"


async def unless_gone(request: Request, work: Awaitable[T]) -> T | Literal[Left.LEFT]:
    """`work`'s result, or LEFT if the client disconnects first: `work` is then cancelled, and with it every
    sub-call it made (generations, a plan's steps, contemplating's agents). An exception `work` raises comes
    out as itself."""
    result: T | Literal[Left.LEFT] = Left.LEFT
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
