"""The running half of `ember eval reasoning`: systems (a mode at an effort), what their answers depend on,
the per-item cache key, and asking up to N items at once.

A system is `mode[:effort]` (`ember-thinking:low`; no effort: the request names none, and the mode takes
its default or, for `ember-auto`, its route's). Its fingerprint is a digest of what its answers depend on
besides the question: the model file of every role the mode uses (`cache.model_id`), the source of the
mode's module and of the code that writes its prompts (`CODE`, plus `DEPENDS` for a mode that reads more:
the reasoning modes their strategies, `ember-auto` the router, the program writer and the other modes), the
settings it reads, and the effort. An item's key is system, task, item id and a digest of that fingerprint
with the question, instruction and `max_tokens`: a record is reused exactly while all of that holds.

Items run in the order given (round-robin over the tasks), up to `concurrency` at once; each item asks its
systems one after another, so a run stopped at any point is paired: every system has answered the items
before the last few in flight. Each scored answer is appended to the cache at once.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, get_args

import click
from tqdm import tqdm

from ember import calling, registry
from ember.agents import answers, calculator, program, strategies
from ember.config import Settings
from ember.engines import passes
from ember.errors import EmberError, EngineUnavailable
from ember.modes import reasoning
from ember.serving.pipeline import Pipeline
from ember.types import ReasoningEffort, Usage
from ember_tools.eval.cache import Cache, digest, role_models, sources
from ember_tools.eval.choice import Item, answer_of
from ember_tools.eval.reasoning_tasks import TASKS

TEXT_KEPT = 300  # characters of an answer kept in the cache, to see what a system said
CODE = (answers, passes, calling)  # prompt-writing code every mode's key hashes


@dataclass(frozen=True)
class Depends:
    """What a mode's answers depend on beyond its own module and `CODE`: modules (by name) and settings."""

    modules: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()


REASONS = tuple(m.__name__ for m in (reasoning, strategies, program, calculator))  # the reasoning modes' code
ROUTED = ("ember.agents.router", "ember.agents.planner", "ember.modes.instant", "ember.modes.thinking")
DEPENDS: dict[str, Depends] = {
    "ember-thinking": Depends(REASONS),
    "ember-contemplating": Depends(REASONS, ("contemplating_agents",)),
    "ember-auto": Depends((*REASONS, *ROUTED, "ember.modes.contemplating"), ("contemplating_agents",)),
}


@dataclass(frozen=True)
class Choice:
    """A system as named on the command line: a registered mode and, optionally, a reasoning effort."""

    mode: str
    effort: ReasoningEffort | None

    @property
    def name(self) -> str:
        return f"{self.mode}:{self.effort}" if self.effort else self.mode


def choice_of(text: str) -> Choice:
    """`mode[:effort]` as a Choice; a usage error for an unknown mode or effort."""
    mode, _, effort = text.partition(":")
    if mode not in registry.modes:
        raise click.BadParameter(f"no mode {mode!r}: {', '.join(registry.modes.names())}", param_hint="--system")
    efforts: tuple[ReasoningEffort, ...] = get_args(ReasoningEffort)
    for known in efforts:
        if effort == known:
            return Choice(mode, known)
    if effort:
        raise click.BadParameter(f"no effort {effort!r}: {', '.join(efforts)}", param_hint="--system")
    return Choice(mode, None)


@dataclass(frozen=True)
class Stamp:
    """A system's name and its fingerprint: all a cache key needs."""

    name: str
    fingerprint: str


def stamp(choice: Choice, settings: Settings) -> Stamp:
    mode = registry.modes.get(choice.mode)
    assert mode is not None  # choice_of checked it
    depends = DEPENDS.get(choice.mode, Depends())
    modules = [sys.modules[type(mode).__module__], *CODE, *map(importlib.import_module, depends.modules)]
    read = {name: settings.model_dump()[name] for name in depends.settings}
    code = [*sources(*modules), *sources(answer_of)]
    return Stamp(choice.name, digest(role_models(settings, mode.roles), code, read, choice.effort))


@dataclass(frozen=True)
class Work:
    task: str
    item: Item


@dataclass
class Reply:
    """What a system answered: its text, its cost, auto's route, any error (`unreachable`: the engine could
    not be reached or timed out, e.g. while the run was paused: no answer, asked again by the next run)."""

    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    seconds: float = 0.0
    route: str | None = None
    error: str = ""
    unreachable: bool = False


class System(Protocol):
    name: str
    fingerprint: str

    async def ask(self, item: Item, instruction: str, max_tokens: int) -> Reply: ...


class ModeSystem:
    """A mode at an effort, asked through the Pipeline."""

    def __init__(self, stamped: Stamp, choice: Choice, pipeline: Pipeline) -> None:
        self.name, self.fingerprint = stamped.name, stamped.fingerprint
        self.choice = choice
        self.pipeline = pipeline

    async def ask(self, item: Item, instruction: str, max_tokens: int) -> Reply:
        started = time.perf_counter()
        try:
            answer, seconds = await answer_of(
                self.pipeline, self.choice.mode, item, max_tokens, instruction, self.choice.effort
            )
        except EmberError as exc:
            error, unreachable = f"{type(exc).__name__}: {exc}", isinstance(exc, EngineUnavailable)
            return Reply(seconds=time.perf_counter() - started, error=error, unreachable=unreachable)
        usage = answer.usage or Usage()
        route = answer.route.target if answer.route is not None else None
        return Reply(answer.text, usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens, seconds, route)


def item_key(system: Stamp | System, work: Work, max_tokens: int) -> str:
    asked = {"question": work.item.question, "instruction": TASKS[work.task].instruction, "max_tokens": max_tokens}
    return f"{system.name}|{work.task}|{work.item.id}|{digest(system.fingerprint, asked)[:16]}"


async def one(system: System, work: Work, max_tokens: int, concurrency: int) -> dict[str, Any]:
    """Ask `system` about `work`'s item and score the answer: the cache record."""
    task, item = TASKS[work.task], work.item
    reply = await system.ask(item, task.instruction, max_tokens)
    committed = None if reply.error else task.committed(reply.text, item)
    record: dict[str, Any] = {"key": item_key(system, work, max_tokens), "system": system.name, "task": work.task}
    record |= {"id": item.id, "committed": committed, "gold": item.gold, "correct": committed == item.gold}
    return record | asdict(reply) | {"text": reply.text[:TEXT_KEPT], "concurrency": concurrency}


@dataclass
class Progress:
    """The items still to ask, each with the systems that have not answered it; shared by the workers."""

    todo: list[tuple[Work, list[System]]]
    next: int = 0
    in_flight: int = 0
    most_in_flight: int = 0
    unreachable: int = 0  # answers not cached: the engine could not be reached
    bar: Any = field(default=None)


async def _worker(progress: Progress, cache: Cache, max_tokens: int, concurrency: int) -> None:
    while progress.next < len(progress.todo):
        work, systems = progress.todo[progress.next]
        progress.next += 1
        progress.in_flight += 1
        progress.most_in_flight = max(progress.most_in_flight, progress.in_flight)
        try:
            for system in systems:
                record = await one(system, work, max_tokens, concurrency)
                if record.pop("unreachable"):  # not kept: every cached record is an answer
                    progress.unreachable += 1
                else:
                    cache.add(record)
                progress.bar.update()
        finally:
            progress.in_flight -= 1


async def run(systems: list[System], work: list[Work], cache: Cache, max_tokens: int, concurrency: int) -> Progress:
    """Ask every system about every item of `work` that the cache does not hold for it, `concurrency` items
    at once, in `work`'s order; each item's systems in turn. A failure stops every worker."""
    missing = [(w, [s for s in systems if item_key(s, w, max_tokens) not in cache.records]) for w in work]
    progress = Progress([(w, todo) for w, todo in missing if todo])
    with tqdm(total=sum(len(todo) for _, todo in progress.todo), desc="reasoning", unit="answer") as bar:
        progress.bar = bar
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(_worker(progress, cache, max_tokens, concurrency))
    return progress
