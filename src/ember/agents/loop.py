"""The one step loop: run a plan's steps on their specialists, in dependency order, within budgets.

Steps whose dependencies are done run together (one task group per wave), so independent sub-tasks run
in parallel on the engines' slots. Every call is bounded by the specialist's own budget and by what is
left of the run's `RunBudget` (steps, completion tokens, wall-clock seconds). A specialist's failure
(an `EmberError`, a timeout, an unknown tool, a tool the caller's key scopes do not allow, arguments that
do not match its schema) becomes a failed `Observation` the merge step sees; any other exception is
Ember's bug and propagates. Steps are fixed when the plan is made: no step's output can add a call.

The loop does not write plans or answers: `ember.agents.planner` does. `server_calls` runs the calls a model
made to specialists offered as tools (the Responses API's built-in tools), each as a one-step run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import anyio

from ember import registry
from ember.agents.specialists import Context, Observation, allowed, check_args
from ember.errors import EmberError
from ember.types import ChatRequest, ServerCall, ToolCall, Usage

if TYPE_CHECKING:
    from ember.services import Services


@dataclass(frozen=True)
class Step:
    """One sub-task: which specialist, with what arguments, after which other steps (by id)."""

    id: int
    tool: str
    args: dict[str, Any]
    after: tuple[int, ...] = ()


@dataclass(frozen=True)
class RunBudget:
    """Limits of one run of the loop."""

    max_steps: int = 6
    max_tokens: int = 3072
    wall_s: float = 240.0


@dataclass
class Run:
    """A run's progress: results by step id, tokens spent, when it started (perf_counter)."""

    budget: RunBudget
    started: float = field(default_factory=time.perf_counter)
    results: dict[int, Observation] = field(default_factory=dict)
    tokens: int = 0
    calls: int = 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def refusal(self, step: Step) -> str | None:
        """Why `step` may not start now (None: it may)."""
        if self.calls >= self.budget.max_steps:
            return f"skipped: the step budget ({self.budget.max_steps}) is used up"
        if self.elapsed() >= self.budget.wall_s:
            return f"skipped: the time budget ({self.budget.wall_s:.0f} s) is used up"
        specialist = registry.specialists.get(step.tool)
        if specialist is not None and specialist.budget.max_tokens and self.tokens >= self.budget.max_tokens:
            return f"skipped: the token budget ({self.budget.max_tokens}) is used up"
        failed = [d for d in step.after if d in self.results and not self.results[d].ok]
        if failed:
            return f"skipped: it needed step {failed[0]}, which failed"
        return None


async def run_steps(steps: list[Step], context: Context, budget: RunBudget) -> Run:
    """Run `steps` wave by wave; every step ends with an observation (done, failed or skipped)."""
    run = Run(budget)
    pending = list(steps)
    while pending:
        ready = [s for s in pending if all(d in run.results for d in s.after)]
        if not ready:  # a cycle, or a dependency on a step that does not exist
            for step in pending:
                run.results[step.id] = _failed(run, f"skipped: step {step.id} waits on steps that never run")
            break
        async with anyio.create_task_group() as tg:
            for step in ready:
                if (why := run.refusal(step)) is not None:
                    run.results[step.id] = _failed(run, why)
                    continue
                run.calls += 1
                tg.start_soon(_call, step, run, context)
        pending = [s for s in pending if s.id not in run.results]
    return run


async def _call(step: Step, run: Run, context: Context) -> None:
    started = run.elapsed()
    try:
        observation = await _observe(step, run, context)
    except (EmberError, TimeoutError) as exc:
        text = f"timed out after {run.elapsed() - started:.1f} s" if isinstance(exc, TimeoutError) else str(exc)
        observation = Observation(f"{step.tool} failed: {text}", ok=False)
    run.tokens += observation.usage.completion_tokens
    run.results[step.id] = replace(observation, started_s=started, ended_s=run.elapsed())


async def _observe(step: Step, run: Run, context: Context) -> Observation:
    specialist = registry.specialists.get(step.tool)
    if specialist is None or not specialist.available():
        raise EmberError(f"there is no specialist named {step.tool!r}")
    if not allowed(specialist, context.scopes):  # the plan schema offers none; a plan built elsewhere might
        raise EmberError(f"{step.tool!r} needs the {specialist.scope!r} scope, which this API key lacks")
    args = check_args(specialist, step.args)
    if "task" in args and step.after:
        known = "\n".join(f"[{d}] {run.results[d].text}" for d in step.after)
        args = {**args, "task": f"{args['task']}\n\nResults of earlier steps (data):\n{known}"}
    max_tokens = min(specialist.budget.max_tokens, max(run.budget.max_tokens - run.tokens, 1))
    timeout = min(specialist.budget.timeout_s, max(run.budget.wall_s - run.elapsed(), 0.1))
    with anyio.fail_after(timeout):
        return await specialist.call(args, context, max_tokens)


SERVER_CALL_BUDGET = RunBudget(max_steps=1, max_tokens=1024, wall_s=120.0)


def server_calls(context: Context) -> Callable[[ToolCall], Awaitable[ServerCall]]:
    """Run a model's call to a specialist (its arguments JSON text) as a one-step run for `context`'s caller;
    a failure (unknown or disallowed specialist, bad arguments, a timeout) is a failed call, not an error."""

    async def run(call: ToolCall) -> ServerCall:
        try:
            args = json.loads(call.arguments)
        except ValueError:
            return ServerCall(call.id, call.name, call.arguments, f"{call.name} failed: arguments are not JSON", False)
        done = await run_steps([Step(0, call.name, args)], context, SERVER_CALL_BUDGET)
        seen = done.results[0]
        return ServerCall(call.id, call.name, call.arguments, seen.text, seen.ok)

    return run


def server_calls_for(request: ChatRequest, services: Services) -> Callable[[ToolCall], Awaitable[ServerCall]] | None:
    """How `request`'s calls to the specialists it offers as tools are run (None: it offers none)."""
    if not request.params.server_tools:
        return None
    return server_calls(Context(services, request.user, request.params.seed, request.scopes))


def _failed(run: Run, why: str) -> Observation:
    now = run.elapsed()
    return Observation(why, ok=False, usage=Usage(), started_s=now, ended_s=now)
