"""`ember-contemplating`: several agents solve the request in parallel, each refines its own solution,
and an aggregator merges them.

1. Draft: `Settings.contemplating_agents` agents (default 3) each solve the request, concurrently, as
   asyncio tasks on the shared `chat` engine's parallel slots; sampling at `AGENT_TEMPERATURE` with seeds
   `seed + agent` (when the request names a seed), so the drafts differ.
2. Refine: each agent critiques its own draft and writes a corrected solution (its second pass).
3. Aggregate: when more than half of the refined solutions end on a short, checkable answer (a number or a
   choice letter, see `ember.modes.reasoning.short_answer`), the most frequent one wins (ties: the lowest
   agent) and that agent's solution is the answer; otherwise one synthesis pass merges the solutions.
Progress notes stream as reasoning; the answer streams as content. Every pass is capped so that all of
them together stay within `CONTEMPLATING_BUDGET[reasoning_effort]` completion tokens, and at the request's
`max_tokens` (so the answer, which is one pass, never exceeds it). The last delta's
usage is the sum of every pass (agents' completion tokens count as `reasoning_tokens`), and with
`include_trace` it carries each pass as a `TraceStep`. This mode does not check answers for truth.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from ember import registry
from ember.engines.base import Engine
from ember.engines.passes import Pass, complete, with_system
from ember.modes.base import Mode
from ember.modes.reasoning import ANSWER_FORMAT, CONTEMPLATING_BUDGET, effort_of, short_answer
from ember.services import Services
from ember.types import Answer, ChatRequest, Delta, GenerationParams, Message, TraceStep, Usage

AGENT_TEMPERATURE = 0.7
CANDIDATE_CHARS = 1500  # each solution shown to the synthesis pass is cut to its last this many characters
DRAFT_PROMPT = (
    f"You are one of several independent solvers. Solve the user's last message step by step. {ANSWER_FORMAT}"
)
REFINE_PROMPT = (
    "Below is your own draft solution to the user's last message. First critique it: look for wrong facts, "
    "arithmetic slips and requirements it missed. Then write a corrected, complete solution. "
    f"{ANSWER_FORMAT}\n\nYour draft:\n{{draft}}"
)
SYNTHESIS_PROMPT = (
    "Several independent solvers answered the user's last message; their solutions are below. Write the single "
    "best final answer for the user: keep what is correct, fix what is wrong, be concise.\n\n{candidates}"
)


@dataclass(frozen=True)
class ContemplatingMode(Mode):
    name: str = "ember-contemplating"
    description: str = "Several agents solve in parallel, refine their own drafts, and a vote or synthesis merges them."
    roles: tuple[str, ...] = ("chat",)
    # Its usage already counts every agent's tokens, so they are not weighted again by the rate limiter.
    cost_weight: float = 1.0

    async def run(self, request: ChatRequest, services: Services) -> AsyncIterator[Delta]:
        engine = await services.engines.get(self.roles[0])
        agents = services.settings.contemplating_agents
        per_pass = min(
            CONTEMPLATING_BUDGET[effort_of(request)] // (2 * agents + 1), request.params.max_tokens or 1 << 30
        )
        clock = _Clock()
        steps: list[TraceStep] = []
        async for note in run_agents(engine, request, agents, per_pass, clock, steps.append):
            yield Delta(reasoning=note)
        steps.sort(key=lambda s: (s.agent or 0, s.started_s))
        finals = [s for s in steps if s.phase == "refine"]
        winner, votes = majority([s.answer for s in finals])
        if winner is not None:
            text = next(s.text for s in finals if s.answer == winner)
            yield Delta(reasoning=f"Vote: {winner} ({votes} of {agents} agents)\n")
            yield _last(request, steps, Delta(content=text, finish_reason="stop"))
            return
        yield Delta(reasoning=f"No majority on a short answer: merging {len(finals)} solutions\n")
        params = GenerationParams(
            max_tokens=per_pass,
            temperature=request.params.temperature,
            top_p=request.params.top_p,
            stop=request.params.stop,
            seed=request.params.seed,
        )
        prompt = SYNTHESIS_PROMPT.format(candidates=candidates([s.text for s in finals]))
        started, merged = clock.now(), Answer()
        async for delta in engine.stream(with_system(request.messages, prompt), params):
            merged.add(delta)
            if delta.usage is None:
                yield delta
                continue
            steps.append(TraceStep(None, "aggregate", merged.text, None, delta.usage, started, clock.now()))
            yield _last(request, steps, Delta(content=delta.content, finish_reason=delta.finish_reason))


class _Clock:
    """Seconds since the request started."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def of(self, at: float) -> float:
        return at - self.t0


def _last(request: ChatRequest, steps: list[TraceStep], delta: Delta) -> Delta:
    delta.usage = sum((s.usage for s in steps), Usage())
    delta.trace = tuple(steps) if request.include_trace else ()
    return delta


async def run_agents(
    engine: Engine, request: ChatRequest, agents: int, per_pass: int, clock: _Clock, record: Callable[[TraceStep], None]
) -> AsyncIterator[str]:
    """Run the agents concurrently; yield a progress note as each pass ends; `record` every pass. An agent's
    failure cancels the others and is raised; so is closing this iterator early."""
    notes: asyncio.Queue[str | Exception | None] = asyncio.Queue()

    async def agent(index: int) -> None:
        try:
            params = _agent_params(request, index, per_pass)
            draft = await _step(engine, index, "draft", with_system(request.messages, DRAFT_PROMPT), params, clock)
            record(draft)
            notes.put_nowait(f"Agent {index} drafted a solution (answer: {draft.answer or '-'})\n")
            prompt = REFINE_PROMPT.format(draft=draft.text)
            refined = await _step(engine, index, "refine", with_system(request.messages, prompt), params, clock)
            record(refined)
            notes.put_nowait(f"Agent {index} refined it (answer: {refined.answer or '-'})\n")
            notes.put_nowait(None)
        except Exception as exc:  # handed to the consumer, which raises it
            notes.put_nowait(exc)

    tasks = [asyncio.create_task(agent(i)) for i in range(1, agents + 1)]
    try:
        finished = 0
        while finished < agents:
            note = await notes.get()
            if isinstance(note, Exception):
                raise note
            finished += note is None
            if note is not None:
                yield note
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _agent_params(request: ChatRequest, index: int, per_pass: int) -> GenerationParams:
    temperature = request.params.temperature
    seed = request.params.seed
    return GenerationParams(
        max_tokens=per_pass,
        temperature=temperature if temperature else AGENT_TEMPERATURE,
        top_p=request.params.top_p,
        seed=None if seed is None else seed + index,
    )


async def _step(
    engine: Engine, agent: int, phase: str, messages: list[Message], params: GenerationParams, clock: _Clock
) -> TraceStep:
    done: Pass = await complete(engine, messages, params)
    usage = Usage(done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.completion_tokens)
    answer = short_answer(done.text)
    return TraceStep(agent, phase, done.text, answer, usage, clock.of(done.started), clock.of(done.ended))


def majority(answers: list[str | None]) -> tuple[str | None, int]:
    """The most frequent short answer and its count, if more than half of `answers` are short answers;
    ties go to the answer given first. (None, 0) otherwise."""
    given = [a for a in answers if a is not None]
    if not given or len(given) * 2 <= len(answers):
        return None, 0
    winner, count = Counter(given).most_common(1)[0]
    return winner, count


def candidates(texts: list[str]) -> str:
    return "\n\n".join(f"Solution {i}:\n{text[-CANDIDATE_CHARS:]}" for i, text in enumerate(texts, start=1))


registry.modes.add("ember-contemplating", ContemplatingMode())
