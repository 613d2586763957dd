"""`ember-thinking`: the `chat` model reasons first, within a budget, then answers.

Two generation phases on the `chat` role's engine:
1. Thinking: the conversation with a prompt asking for step-by-step reasoning only, capped at the budget
   `reasoning_effort` buys (`THINKING_BUDGET`: low 256, medium 1024, high 2048 tokens). It streams as
   `Delta(reasoning=...)`, never as content. At the cap the thinking simply stops and the answer is forced.
2. Answering: the conversation plus the reasoning, asked for the final answer, under the request's own
   `max_tokens`, `stop` and sampling; it streams as content.
The last delta's usage is the sum of both phases, with the thinking phase's completion tokens reported as
`reasoning_tokens`. This mode does not parse, check or rewrite the answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from ember import registry
from ember.engines.base import Engine
from ember.engines.passes import with_system
from ember.modes.base import Mode
from ember.modes.reasoning import THINKING_BUDGET, effort_of
from ember.services import Services
from ember.types import Answer, ChatRequest, Delta, GenerationParams, Usage

THINK_PROMPT = (
    "You are Ember. Before anyone answers the user's last message, think it through step by step: "
    "restate what is asked, work out the facts and any calculation, and check the result. "
    "Write only this reasoning, not a polished answer."
)
ANSWER_PROMPT = (
    "You are Ember, a helpful, concise assistant. Below is your own step-by-step reasoning about the "
    "user's last message. Use it to give the final answer directly; do not repeat the reasoning.\n\n"
    "Reasoning:\n{reasoning}"
)


@dataclass(frozen=True)
class ThinkingMode(Mode):
    name: str = "ember-thinking"
    description: str = "Reasons step by step within a budget set by reasoning_effort, then answers."
    roles: tuple[str, ...] = ("chat",)

    async def run(self, request: ChatRequest, services: Services) -> AsyncIterator[Delta]:
        engine = await services.engines.get(self.roles[0])
        budget = THINKING_BUDGET[effort_of(request)]
        reasoning = Answer()
        async for delta in think(engine, request, budget):
            if reasoning.add(delta).reasoning:
                yield delta
        spent = reasoning.usage or Usage()
        thought = Usage(spent.prompt_tokens, spent.completion_tokens, spent.completion_tokens)
        prompt = ANSWER_PROMPT.format(reasoning=reasoning.thought.strip() or "(none)")
        async for delta in engine.stream(with_system(request.messages, prompt), request.params):
            if delta.usage is not None:
                delta.usage = thought + delta.usage
            yield delta


async def think(engine: Engine, request: ChatRequest, budget: int) -> AsyncIterator[Delta]:
    """The thinking phase: everything the engine writes becomes reasoning; at most `budget` tokens. The
    last delta carries the phase's usage (no finish_reason: the answer is still to come)."""
    params = GenerationParams(
        max_tokens=budget, temperature=request.params.temperature, top_p=request.params.top_p, seed=request.params.seed
    )
    async for delta in engine.stream(with_system(request.messages, THINK_PROMPT), params):
        text = delta.reasoning + delta.content
        if text or delta.usage:
            yield replace(delta, content="", reasoning=text, finish_reason=None)


registry.modes.add("ember-thinking", ThinkingMode())
