"""`ember-auto`: spend compute only where it is needed.

`ember.agents.router.choose` picks a route from cheap features; this mode then hands the request to that
mode, answers a bare calculation with the exact calculator (no model call), or plans sub-tasks for
specialists (`ember.agents.planner`). The route and its reason ride on the last delta (`route`, returned
to clients as the extension field of that name, and counted in metrics); with `include_trace` the
planner's steps come back as `trace`. The storing and consent rules of the mode it routes to apply
(the pipeline reads the route). This mode does not generate text itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

import anyio

from ember import registry
from ember.agents.calculator import calculate
from ember.agents.loop import RunBudget
from ember.agents.planner import plan_and_run
from ember.agents.program import write_program
from ember.agents.router import choose
from ember.agents.specialists import Context
from ember.engines.passes import with_system
from ember.modes.base import Mode
from ember.services import Services
from ember.types import ChatRequest, Citation, Delta, Route, TraceStep, Usage

PLANNER_ROLE = PROGRAM_ROLE = "chat"
CHOICE_TOKENS = 64
CHOICE_PROMPT = (
    'Answer the multiple-choice question directly: start with a line of the form "Answer: <letter>", '
    "then give one short sentence saying why."
)
PLANNER_BUDGET = RunBudget(max_steps=6, max_tokens=3072, wall_s=240.0)

Runner = Callable[[ChatRequest, Services, Route], AsyncIterator[Delta]]


async def _by_mode(request: ChatRequest, services: Services, route: Route) -> AsyncIterator[Delta]:
    mode = registry.modes.get(route.target)
    assert mode is not None  # the router only picks registered modes
    routed = replace(request, model=route.target, reasoning_effort=request.reasoning_effort or route.effort)
    async for delta in mode.run(routed, services):
        yield delta


async def _calculator(request: ChatRequest, services: Services, route: Route) -> AsyncIterator[Delta]:
    expression = str(route.signals["expression"])
    result = calculate(expression)
    citation = Citation(1, "calculator", result.text(), "", "calculator", kind="step", meta={"ok": True})
    yield Delta(content=f"{result.text()} [1]", finish_reason="stop", usage=Usage(), citations=(citation,))


async def _program(request: ChatRequest, services: Services, route: Route) -> AsyncIterator[Delta]:
    """A word problem: the `chat` model writes straight-line arithmetic and the calculator runs it exactly;
    a program that does not run is escalated to `ember-thinking` (the route says so)."""
    engine = await services.engines.get(PROGRAM_ROLE)
    program = await write_program(engine, request.messages, request.params)
    if program.answer is None:
        reason = f"{route.reason}; the program failed ({program.problem}): escalated"
        escalated = replace(route, target="ember-thinking", reason=reason)
        async for delta in _by_mode(request, services, escalated):
            if delta.finish_reason is not None:
                delta.route = escalated
                delta.usage = program.usage + (delta.usage or Usage())  # the failed program's tokens count too
            yield delta
        return
    value = program.answer.decimal
    citation = Citation(1, "program", program.code, "", "calculator", kind="step", meta={"ok": True})
    text = f"Worked out exactly [1]:\n\n```python\n{program.code}\n```\n\nAnswer: {value}"
    yield Delta(content=text, finish_reason="stop", usage=program.usage, citations=(citation,))


async def _choice(request: ChatRequest, services: Services, route: Route) -> AsyncIterator[Delta]:
    """A multiple-choice question: the `chat` model names the option at once, then says why in a sentence
    (what this costs and wins against thinking first is measured by `ember eval auto`, docs/auto.md)."""
    engine = await services.engines.get(PROGRAM_ROLE)
    params = replace(request.params, max_tokens=min(request.params.max_tokens or CHOICE_TOKENS, CHOICE_TOKENS))
    async for delta in engine.stream(with_system(request.messages, CHOICE_PROMPT), params):
        yield delta


async def _planner(request: ChatRequest, services: Services, route: Route) -> AsyncIterator[Delta]:
    engine = await services.engines.get(PLANNER_ROLE)
    seen = tuple(d for m in request.messages for d in m.descriptions)
    context = Context(services, request.user, request.params.seed, request.scopes, seen)
    async for delta in plan_and_run(engine, request.messages, context, PLANNER_BUDGET, request.params):
        yield delta


RUNNERS: dict[str, Runner] = {
    "calculator": _calculator,
    "choice": _choice,
    "program": _program,
    "planner": _planner,
}


@dataclass(frozen=True)
class AutoMode(Mode):
    name: str = "ember-auto"
    description: str = (
        "Routes each request: arithmetic to an exact calculator, several asks to a planner with specialists, "
        "word problems to thinking, health and shopping to their modes, the rest to instant."
    )
    roles: tuple[str, ...] = ("chat-fast", "chat")
    tools: bool = True  # routed to instant, or to thinking when reasoning effort is asked for
    memory: bool = True  # handed on to the mode it routes to

    async def run(self, request: ChatRequest, services: Services) -> AsyncIterator[Delta]:
        route = await anyio.to_thread.run_sync(choose, request)  # regexes over all the text: off the event loop
        runner = RUNNERS.get(route.target, _by_mode)
        async for delta in runner(request, services, route):
            if delta.finish_reason is not None:
                delta.route = delta.route or route
                if not request.include_trace:
                    delta.trace = ()
                elif not delta.trace:
                    delta.trace = (TraceStep(None, "route", route.reason, route.target, Usage(), 0.0, 0.0),)
            yield delta


registry.modes.add("ember-auto", AutoMode())
