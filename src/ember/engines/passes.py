"""One generation pass run to its end and collected (`complete`), and prompt assembly with a leading
system text (`with_system`): what modes and agents that write several passes per answer share."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ember.engines.base import Engine
from ember.types import Answer, GenerationParams, Message, Usage


def with_system(messages: list[Message], text: str) -> list[Message]:
    """`messages` with `text` leading the system prompt (the caller's own system prompt follows it)."""
    own = "\n\n".join(m.content for m in messages if m.role == "system")
    system = f"{text}\n\n{own}" if own else text
    return [Message("system", system), *(m for m in messages if m.role != "system")]


@dataclass(frozen=True)
class Pass:
    """One collected generation: its text, tokens, why it stopped, and when it ran (perf_counter)."""

    text: str
    usage: Usage
    finish: str | None
    started: float
    ended: float


async def complete(engine: Engine, messages: list[Message], params: GenerationParams) -> Pass:
    """Run one generation to its end and collect it (content and any native reasoning, in order)."""
    started = time.perf_counter()
    answer = await Answer.of(engine.stream(messages, params))
    text = (answer.thought + answer.text).strip()  # engines stream native reasoning before the content
    return Pass(text, answer.usage or Usage(), answer.finish_reason, started, time.perf_counter())
