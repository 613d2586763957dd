"""`ember-contemplating`: diverse agents solve the request in parallel, in waves that stop once they agree,
and a weighted vote (or, with nothing to vote on, a synthesis) merges them.

A wave is `Settings.contemplating_agents` agents (default 3) run concurrently as asyncio tasks on the shared
`chat` engine's parallel slots. On a task with a checkable answer (`ember.agents.strategies.shape_of`) the
agents take the plan's strategies in turn (`PLANS`): for a word problem a program the calculator runs exactly,
a planned program and a prose derivation; for a multiple-choice question each names an option directly; the
first agent decodes greedily, the others sample with their own seeds. When every agent
that reached an answer agrees (two at least), no further wave runs and the tokens saved are reported;
otherwise up to `CONTEMPLATING_WAVES[effort]` waves run and the strategies' weighted vote
(`strategies.vote`) picks the answer, given as the text of the first agent that reached it. Any other
request: one wave of prose solutions, a majority on a short answer if there is one, else one synthesis pass.
Progress notes stream as reasoning; the answer streams as content. Every pass is capped so that all of them
together stay within `CONTEMPLATING_BUDGET[effort]` completion tokens, and at the request's `max_tokens`.
The last delta's usage is the sum of every pass (agents' completion tokens count as `reasoning_tokens`), and
with `include_trace` it carries each pass as a `TraceStep`. This mode does not check answers for truth.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from ember import registry
from ember.agents.answers import ANSWER_FORMAT
from ember.agents.strategies import (
    PLANS,
    Attempt,
    Strategy,
    Verdict,
    agreed,
    read_answer_line,
    shape_of,
    solve,
    spent,
    strategy_at,
    vote,
)
from ember.engines.base import Engine
from ember.engines.passes import with_system
from ember.modes.base import Mode
from ember.modes.reasoning import CONTEMPLATING_BUDGET, CONTEMPLATING_WAVES, effort_of
from ember.services import Services
from ember.types import Answer, ChatRequest, Delta, GenerationParams, Message, TraceStep, Usage

CANDIDATE_CHARS = 1500  # each solution shown to the synthesis pass is cut to its last this many characters
DRAFT_PROMPT = (
    f"You are one of several independent solvers. Solve the user's last message step by step. {ANSWER_FORMAT}"
)
SYNTHESIS_PROMPT = (
    "Several independent solvers answered the user's last message; their solutions are below. Write the single "
    "best final answer for the user: keep what is correct, fix what is wrong, be concise.\n\n{candidates}"
)


@dataclass(frozen=True)
class Run:
    """One request's agents: the engine, the conversation, the seed and what each pass may write."""

    engine: Engine
    messages: list[Message]
    seed: int | None
    cap: int
    clock: _Clock
    record: Callable[[TraceStep], None]


@dataclass(frozen=True)
class ContemplatingMode(Mode):
    name: str = "ember-contemplating"
    description: str = (
        "Diverse agents (a program, a planned program, a derivation) solve in parallel until they agree; a weighted "
        "vote or a synthesis merges them."
    )
    roles: tuple[str, ...] = ("chat",)
    # Its usage already counts every agent's tokens, so they are not weighted again by the rate limiter.
    cost_weight: float = 1.0

    async def run(self, request: ChatRequest, services: Services) -> AsyncIterator[Delta]:
        agents, effort = services.settings.contemplating_agents, effort_of(request)
        waves = CONTEMPLATING_WAVES[effort]
        cap = min(CONTEMPLATING_BUDGET[effort] // (agents * waves + 1), request.params.max_tokens or 1 << 30)
        steps: list[TraceStep] = []
        run = Run(
            await services.engines.get(self.roles[0]),
            request.messages,
            request.params.seed,
            cap,
            _Clock(),
            steps.append,
        )
        done: list[Attempt] = []
        shape = shape_of(request)
        plan = PLANS.get(shape) or (Strategy("prose", DRAFT_PROMPT, cap, reads=read_answer_line),)
        for wave in range(waves if shape != "open" else 1):
            batch = [Attempt(len(done) + i, strategy_at(plan, len(done) + i)) for i in range(agents)]
            async for note in run_wave(run, batch):
                yield Delta(reasoning=note)
            done += batch
            if shape != "open" and agreed(done):
                if skipped := (waves - wave - 1) * agents:
                    yield Delta(reasoning=saved_note(done, skipped))
                break
        steps.sort(key=lambda s: (s.agent or 0, s.started_s))
        verdict = vote(done) if shape != "open" else majority(done)
        if verdict.answer is not None:
            winner = next(a for a in done if a.answer == verdict.answer)
            yield Delta(reasoning=f"Vote: {verdict.answer} ({verdict.agreeing} of {len(done)} agents)\n")
            yield _last(request, steps, Delta(content=winner.shown, finish_reason="stop"))
            return
        yield Delta(reasoning=f"No agreement on a short answer: merging {len(done)} solutions\n")
        async for delta in synthesis(run, request, done):
            yield _last(request, steps, delta) if delta.usage is not None else delta


async def run_wave(run: Run, batch: list[Attempt]) -> AsyncIterator[str]:
    """Run a wave's attempts concurrently; yield a note as each ends and record it. An agent's failure
    cancels the others and is raised; so is closing this iterator early."""
    notes: asyncio.Queue[str | Exception] = asyncio.Queue()

    async def agent(attempt: Attempt) -> None:
        try:
            started = run.clock.now()
            async for _ in solve(run.engine, run.messages, attempt, run.cap, run.seed):
                pass
            usage = spent([attempt])
            n = attempt.index + 1
            run.record(
                TraceStep(n, attempt.strategy.name, attempt.trace, attempt.answer, usage, started, run.clock.now())
            )
            notes.put_nowait(f"Agent {n} ({attempt.strategy.name}) answered: {attempt.answer or '-'}\n")
        except Exception as exc:  # handed to the consumer, which raises it
            notes.put_nowait(exc)

    tasks = [asyncio.create_task(agent(attempt)) for attempt in batch]
    try:
        for _ in batch:
            note = await notes.get()
            if isinstance(note, Exception):
                raise note
            yield note
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def saved_note(done: list[Attempt], skipped: int) -> str:
    """Says that `skipped` agents were not run, and about how many tokens that saved (at the mean so far)."""
    saved = skipped * spent(done).completion_tokens // len(done)
    return f"All agents that answered agree: {skipped} more not run (~{saved} tokens saved)\n"


def majority(attempts: list[Attempt]) -> Verdict:
    """The most frequent short answer when more than half of the attempts give one (ties: the first given);
    else no answer."""
    given = [a.answer for a in attempts if a.answer is not None]
    if not given or len(given) * 2 <= len(attempts):
        return Verdict(None, 0, len(given))
    winner = max(dict.fromkeys(given), key=given.count)
    return Verdict(winner, given.count(winner), len(given))


async def synthesis(run: Run, request: ChatRequest, done: list[Attempt]) -> AsyncIterator[Delta]:
    """One pass that merges the solutions; its last delta carries only its own usage (recorded as a step)."""
    params = GenerationParams(
        max_tokens=run.cap,
        temperature=request.params.temperature,
        top_p=request.params.top_p,
        stop=request.params.stop,
        seed=request.params.seed,
    )
    prompt = SYNTHESIS_PROMPT.format(candidates=candidates([a.text for a in done]))
    started, merged = run.clock.now(), Answer()
    async for delta in run.engine.stream(with_system(request.messages, prompt), params):
        merged.add(delta)
        if delta.usage is not None:
            run.record(TraceStep(None, "aggregate", merged.text, None, delta.usage, started, run.clock.now()))
            delta = Delta(content=delta.content, finish_reason=delta.finish_reason, usage=delta.usage)
        yield delta


class _Clock:
    """Seconds since the request started."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self.t0


def _last(request: ChatRequest, steps: list[TraceStep], delta: Delta) -> Delta:
    delta.usage = sum((s.usage for s in steps), Usage())
    delta.trace = tuple(steps) if request.include_trace else ()
    return delta


def candidates(texts: list[str]) -> str:
    return "\n\n".join(f"Solution {i}:\n{text[-CANDIDATE_CHARS:]}" for i, text in enumerate(texts, start=1))


registry.modes.add("ember-contemplating", ContemplatingMode())
