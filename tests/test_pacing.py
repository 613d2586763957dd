"""The managed child's stream read in bursts (`ember.engines.pacing`): the same text in fewer chunks, the
first piece and the end of an answer passed on at once, content and reasoning never merged together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from ember.engines.pacing import paced
from ember.errors import EngineUnavailable
from ember.types import Delta, ToolCallPiece, Usage


async def source(pieces: list[tuple[float, Delta]]) -> AsyncIterator[Delta]:
    """Each delta `delay` s after the one before it, as an engine's tokens arrive: whether or not anyone reads
    them meanwhile (one that is due already is there at once, as bytes waiting in a socket)."""
    due = time.monotonic()
    for delay, delta in pieces:
        due += delay
        if (wait := due - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        yield delta


async def timed(deltas: AsyncIterator[Delta], interval_s: float) -> list[tuple[float, Delta]]:
    start = time.monotonic()
    return [(time.monotonic() - start, d) async for d in paced(deltas, interval_s)]


def test_tokens_that_arrive_during_the_pause_go_out_as_one_chunk() -> None:
    tokens = [(0.05, Delta(content="Hello"))] + [(0.005, Delta(content=f" w{i}")) for i in range(40)]
    end = [(0.0, Delta(finish_reason="stop")), (0.0, Delta(usage=Usage(3, 41)))]
    out = asyncio.run(timed(source(tokens + end), 0.05))
    texts = [d.content for _, d in out if d.content]
    assert "".join(texts) == "Hello" + "".join(f" w{i}" for i in range(40))
    assert texts[0] == "Hello" and out[0][0] < 0.09  # the first token at once
    assert len(texts) < 20  # 40 tokens 5 ms apart, read every ~50 ms
    assert [d.finish_reason for _, d in out[-2:]] == ["stop", None] and out[-1][1].usage == Usage(3, 41)


def test_the_end_of_an_answer_is_not_held() -> None:
    tokens = [Delta(content="a"), Delta(content="b"), Delta(finish_reason="stop"), Delta(usage=Usage(1, 2))]
    out = asyncio.run(timed(source([(0.0, d) for d in tokens]), 0.3))
    assert [d.content for _, d in out] == ["a", "b", "", ""] and out[-1][1].usage == Usage(1, 2)
    assert out[-1][0] < 0.55  # one pause, after "a"; none after the finish


def test_reasoning_and_content_keep_their_order_and_tool_calls_their_pieces() -> None:
    call = Delta(tool_calls=(ToolCallPiece(0, "c1", "f", '{"x"'),))
    rest = Delta(tool_calls=(ToolCallPiece(0, arguments=": 1}"),))
    thought, said = [Delta(reasoning="think "), Delta(reasoning="more")], [Delta(content="ans"), Delta(content="wer")]
    pieces = [*thought, *said, call, rest]
    out = asyncio.run(timed(source([(0.0, d) for d in pieces]), 0.01))
    assert "".join(d.reasoning for _, d in out) == "think more" and "".join(d.content for _, d in out) == "answer"
    assert all(not (d.reasoning and d.content) for _, d in out)
    assert [d.tool_calls for _, d in out if d.tool_calls] == [call.tool_calls, rest.tool_calls]


def test_what_came_before_an_engine_failure_still_goes_out() -> None:
    async def failing() -> AsyncIterator[Delta]:
        for text in ("a", "b", "c"):
            yield Delta(content=text)
        raise EngineUnavailable("the child stopped")

    seen: list[str] = []

    async def read() -> None:
        async for delta in paced(failing(), 0.01):
            seen.append(delta.content)

    with pytest.raises(EngineUnavailable):
        asyncio.run(read())
    assert "".join(seen) == "abc"
