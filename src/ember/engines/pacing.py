"""Fewer wake-ups per token: a local engine's stream read in bursts, its pieces merged.

On a machine whose cores all run llama.cpp's compute threads, every process that wakes for a token takes a
core from them for a moment, and a compute thread that has stopped spinning at a barrier (the child's
`GOMP_SPINCOUNT`) then waits to be woken again. `paced` makes Ember and its client wake a few times less
often: after passing a piece on it sleeps `interval_s` (the tokens that arrive meanwhile wait in the
socket), then takes every piece already there at once and passes them on as one delta. The first piece and
any piece that had to be waited for go out as soon as they come, and so does everything with the end of the
answer (finish reason, usage) or tool calls; content and reasoning are merged only with their own kind, so
their order is kept. The text is the same, in fewer, larger chunks, also when the engine fails midway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from ember.types import Delta

INTERVAL_S = 0.05  # at most ~20 bursts a second: still a smooth stream to read
WAITED_S = 0.002  # a piece that took longer than this to come was not already there: pass it on at once


def _kind(delta: Delta) -> str | None:
    """ "content" or "reasoning" for a delta that holds only that text (which may be merged), else None."""
    plain = not (delta.tool_calls or delta.server_calls or delta.finish_reason or delta.usage or delta.extends)
    if plain and delta.content and not delta.reasoning:
        return "content"
    if plain and delta.reasoning and not delta.content:
        return "reasoning"
    return None


def _merged(first: Delta, second: Delta) -> Delta:
    return replace(first, content=first.content + second.content, reasoning=first.reasoning + second.reasoning)


async def paced(deltas: AsyncIterator[Delta], interval_s: float = INTERVAL_S) -> AsyncIterator[Delta]:
    """`deltas` in bursts at most every `interval_s` (see the module's docstring)."""
    pending: Delta | None = None
    first = True
    while True:
        asked = time.monotonic()
        try:
            delta = await anext(deltas, None)
        except Exception:  # the engine failed: what it said before still goes out first
            if pending is not None:
                yield pending
            raise
        if delta is None:
            break
        waited = first or time.monotonic() - asked > WAITED_S
        first = False
        if pending is not None and (kind := _kind(delta)) is not None and kind == _kind(pending):
            pending = _merged(pending, delta)
        else:
            if pending is not None:
                yield pending
            pending = delta
        if waited or _kind(pending) is None:
            out, pending = pending, None
            yield out
            if _kind(out) is not None:  # text: let the next tokens gather (the end of an answer is not held)
                await asyncio.sleep(interval_s)
    if pending is not None:
        yield pending
