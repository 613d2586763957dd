"""Admission control for model work (chat completions, transcriptions, embeddings), one limit per server.

At most `running` requests are in progress and at most `waiting` more wait, first come first served, for
one of them to end; a request beyond that is refused at once with ServerBusy (503 `server_busy`, with a
Retry-After header) instead of queueing without bound in front of the engines. A request holds its place
from before any audio is heard until its answer is over, however it ended (the chat route closes it with
the stream, also when the client leaves mid-stream).

    async with admission.hold(): ...   # ServerBusy if full; waits while only the waiting room has space

One limit for the whole process, not per engine or per key (a key's own limits are `ember.policy.limits`).
A request whose client leaves while it waits keeps its place until its turn; the route then sees the
disconnect as soon as it waits for the answer, and lets the place go. This module knows nothing of HTTP or
metrics: `/metrics` reads its counters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from ember.config import Settings
from ember.errors import ServerBusy


class Admission:
    """A bounded number of requests in progress, and a bounded waiting room in front of them."""

    def __init__(self, running: int, waiting: int, retry_after_s: int = 1) -> None:
        if running < 1 or waiting < 0:
            raise ValueError(f"admission needs running >= 1 and waiting >= 0, not {running} and {waiting}")
        self.max_running = running
        self.max_waiting = waiting
        self.retry_after_s = retry_after_s
        self.running = 0  # in progress now
        self.waiting = 0  # waiting for a turn now
        self.admitted = 0  # since start
        self.refused = 0  # since start
        self._slots = anyio.Semaphore(running)  # hands a released slot to the longest waiter

    @classmethod
    def of(cls, settings: Settings) -> Admission:
        running, waiting = settings.admission_limits
        return cls(running, waiting, settings.admission_retry_after_s)

    def _busy(self) -> ServerBusy:
        self.refused += 1
        return ServerBusy(
            f"The server is busy: {self.running} requests are in progress and {self.waiting} waiting, as many "
            f"as it takes. Try again in {self.retry_after_s}s.",
            headers={"retry-after": str(self.retry_after_s)},
        )

    async def _enter(self) -> None:
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            if self.waiting >= self.max_waiting:
                raise self._busy() from None
            self.waiting += 1
            try:
                await self._slots.acquire()  # cancelled while waiting: no slot is taken
            finally:
                self.waiting -= 1
        self.running += 1
        self.admitted += 1

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """One place for the block: ServerBusy at once if none is free and the waiting room is full;
        released on any exit, cancellation included."""
        await self._enter()
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()
