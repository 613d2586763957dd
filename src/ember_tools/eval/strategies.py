"""`ember eval strategies`: the reasoning strategies on the dev slice only, to choose plans, budgets and vote
weights from measurements rather than guesses.

For every dev item of GSM8K (the `numeric` shape) and ARC-Challenge (the `choice` shape) the `chat` role makes
the attempts `DRAWS` lists: the first strategy's first attempt greedy (as the modes' first attempt), every
other sampled as the modes' later attempts are (their own seeds). Each item's attempts run concurrently and
are appended to a per-item cache (`--cache`, resumable: an item is asked again only if its key, made of the
prompts, the model file, the draws and the cap, changed). The report, from the cache alone, gives per strategy how often
its short answer is right, greedy and sampled apart, how often it reached none, and token percentiles; then
each candidate plan of `CANDIDATES` replayed as `ember-thinking` runs it at every effort (`goes_on`) and as
`ember-contemplating` runs it (waves that stop once they agree, `agreed`): accuracy with a Wilson 95% interval,
the difference to the first plan with a paired bootstrap interval, and completion tokens an item. The dev
slice is `reasoning_tasks.DEV_ITEMS` + `DEV_TAIL` items a task, never in `ember eval reasoning`'s reported
sample; this command never reads that sample. It measures; it asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import click
import numpy as np
from tqdm import tqdm

from ember import registry
from ember.agents import program, strategies
from ember.agents.strategies import (
    DIRECT,
    ELIMINATION,
    PLANNED_PROGRAM,
    PROGRAM,
    PROSE,
    Attempt,
    Shape,
    Strategy,
    agreed,
    goes_on,
    next_strategy,
    solve,
    strategy_at,
    vote,
)
from ember.config import Settings
from ember.engines.pool import EnginePool
from ember.modes.reasoning import CONTEMPLATING_WAVES, THINKING_ATTEMPTS, THINKING_BUDGET
from ember.types import Message, ReasoningEffort, Usage
from ember_tools.eval.cache import Cache, digest, role_models, sources
from ember_tools.eval.paired import paired_bootstrap, wilson
from ember_tools.eval.reasoning_tasks import TASKS, sample

SHAPES: dict[str, Shape] = {"gsm8k": "numeric", "arc_challenge": "choice"}
DRAWS: dict[Shape, tuple[tuple[Strategy, int], ...]] = {
    "numeric": ((PROGRAM, 6), (PLANNED_PROGRAM, 3), (PROSE, 2)),
    "choice": ((DIRECT, 6), (ELIMINATION, 3)),
}
"""Attempts per strategy and item: enough for every candidate plan's attempts at high effort and for two waves
of three agents."""
CANDIDATES: dict[Shape, dict[str, tuple[Strategy, ...]]] = {
    "numeric": {
        "program, planned, prose": (PROGRAM, PLANNED_PROGRAM, PROSE),
        "same, equal weights": tuple(replace(s, weight=1.0) for s in (PROGRAM, PLANNED_PROGRAM, PROSE)),
        "programs": (PROGRAM,),
        "program, planned": (PROGRAM, PLANNED_PROGRAM),
    },
    "choice": {
        "direct, elimination": (DIRECT, ELIMINATION),
        "same, equal weights": (replace(DIRECT, weight=1.0), replace(ELIMINATION, weight=1.0)),
        "direct": (DIRECT,),
    },
}
"""Plans to compare, with the strategies' weights unless said; the first of each shape is the baseline the others
are compared with (the plan of the modes before this measurement). Thinking replays each twice: taking the
plan's strategies in turn (as it did) and repeating the first that answered ("checks repeated", as it does)."""
EFFORTS: tuple[ReasoningEffort, ...] = ("low", "medium", "high")
AGENTS = 3  # contemplating's default agents a wave


@dataclass(frozen=True)
class Draw:
    """One recorded attempt: its strategy, which of that strategy's attempts it was, answer and tokens."""

    strategy: str
    number: int
    answer: str | None
    tokens: int


def plan_of(shape: Shape) -> list[tuple[Strategy, int]]:
    """The attempts to record on one item: (strategy, its attempt number), in order."""
    return [(strategy, n) for strategy, count in DRAWS[shape] for n in range(count)]


async def draw(engine: Any, messages: list[Message], strategy: Strategy, number: int, first: bool, cap: int) -> Draw:
    """One attempt: greedy for the plan's first strategy's first attempt, else sampled with its own seed."""
    index = 0 if first and number == 0 else 1 + number
    attempt = Attempt(index, strategy)  # capped at the strategy's own tokens as in the modes, and at `cap`
    async for _ in solve(engine, messages, attempt, cap, 0 if first else 100):
        pass
    return Draw(strategy.name, number, attempt.answer, attempt.usage.completion_tokens)


async def record_all(settings: Settings, task: str, items: int, cap: int, cache: Cache) -> None:
    """Make and cache every missing item's attempts, one item at a time (its attempts at once)."""
    shape = SHAPES[task]
    pool = EnginePool(settings)
    try:
        engine = await pool.get("chat")
        key_of = keys(settings, task, cap)
        for item in tqdm(sample(task, 0, 0, dev=True)[:items], desc=task, unit="item"):
            if key_of(item.id) in cache.records:
                continue
            messages = [Message("user", f"{item.question}\n\n{TASKS[task].instruction}")]
            first = DRAWS[shape][0][0]
            draws = await asyncio.gather(*(draw(engine, messages, s, n, s is first, cap) for s, n in plan_of(shape)))
            cache.add({"key": key_of(item.id), "task": task, "item": item.id, "gold": item.gold,
                       "draws": [d.__dict__ for d in draws]})  # fmt: skip
    finally:
        await pool.close()


def keys(settings: Settings, task: str, cap: int) -> Any:
    """An item's cache key: task, item and a digest of the model, the strategies' code, the draws and the cap."""
    plan = [(s.name, n) for s, n in DRAWS[SHAPES[task]]]
    made = digest(role_models(settings, ("chat",)), sources(strategies, program), plan, cap)
    return lambda item: f"{task}|{item}|{made}"


def replay_thinking(
    draws: list[Draw], plan: tuple[Strategy, ...], effort: ReasoningEffort, repeat: bool = True
) -> tuple[str | None, int]:
    """The answer and completion tokens `ember-thinking` at `effort` would give with `plan`, from `draws`;
    with `repeat` its checks repeat the first strategy that answered (`next_strategy`), else they take the
    plan's strategies in turn."""
    (most, quorum), left = THINKING_ATTEMPTS[effort], THINKING_BUDGET[effort]
    taken, done = _taker(draws), list[Attempt]()
    while goes_on(done, plan, most, quorum, left):
        strategy = next_strategy(plan, done) if repeat else strategy_at(plan, len(done))
        done.append(taken(strategy, len(done)))
        left -= done[-1].usage.completion_tokens
    return vote(done).answer, sum(a.usage.completion_tokens for a in done)


def replay_contemplating(
    draws: list[Draw], plan: tuple[Strategy, ...], effort: ReasoningEffort
) -> tuple[str | None, int]:
    """The answer and agents' tokens `ember-contemplating` at `effort` would give with `plan`, from `draws`."""
    taken, done = _taker(draws), list[Attempt]()
    for _ in range(CONTEMPLATING_WAVES[effort]):
        done += [taken(strategy_at(plan, len(done) + i), len(done) + i) for i in range(AGENTS)]
        if agreed(done):
            break
    return vote(done).answer, sum(a.usage.completion_tokens for a in done)


def _taker(draws: list[Draw]) -> Any:
    """Hands out the recorded attempts: attempt 0 is the greedy draw, later ones each strategy's next sample."""
    used: dict[str, int] = {}

    def take(strategy: Strategy, index: int) -> Attempt:
        number = used.get(strategy.name, 0)
        used[strategy.name] = number + 1
        found = next((d for d in draws if d.strategy == strategy.name and d.number == number), None)
        if found is None:
            raise LookupError(f"no attempt {number} of {strategy.name} recorded")
        return Attempt(index, strategy, answer=found.answer, usage=Usage(0, found.tokens))

    return take


Replay = Callable[[list[Draw], tuple[Strategy, ...], ReasoningEffort], tuple[str | None, int]]
MODES: tuple[tuple[str, Replay, ReasoningEffort], ...] = (
    *((f"thinking:{e}", partial(replay_thinking, repeat=False), e) for e in EFFORTS),
    *((f"thinking:{e} checks repeated", replay_thinking, e) for e in EFFORTS),
    ("contemplating:medium", replay_contemplating, "medium"),
)


def report(cache: Cache, task: str) -> list[dict[str, Any]]:
    """Per strategy, then per mode and candidate plan (against the shape's first plan), on the task's items."""
    records = [r for r in cache.records.values() if r["task"] == task]
    items = [([Draw(**d) for d in r["draws"]], str(r["gold"])) for r in records]
    if not items:
        return []
    names = dict.fromkeys(d.strategy for draws, _ in items for d in draws)
    rows = [strategy_row(task, name, items) for name in names]
    for mode, replay, effort in MODES:
        right: dict[str, list[bool]] = {}
        for plan_name, plan in CANDIDATES[SHAPES[task]].items():
            answers, short = [], 0
            for draws, _ in items:
                try:
                    answers.append(replay(draws, plan, effort))
                except LookupError:  # the plan needed more attempts than were recorded: counted as wrong
                    answers.append((None, 0))
                    short += 1
            right[plan_name] = [a == gold for (a, _), (_, gold) in zip(answers, items, strict=True)]
            diff = paired_bootstrap(right[plan_name], next(iter(right.values())))
            rows.append(
                {
                    "task": task,
                    "system": f"{mode} {plan_name}",
                    "n": len(items),
                    "accuracy": round(sum(right[plan_name]) / len(items), 3),
                    "interval95": [round(x, 3) for x in wilson(sum(right[plan_name]), len(items))],
                    "minus_first": [round(x, 3) for x in diff],
                    "tokens": round(float(np.mean([t for _, t in answers])), 1),
                    "short_of_recorded_attempts": short,
                }
            )
    return rows


def strategy_row(task: str, name: str, items: list[tuple[list[Draw], str]]) -> dict[str, Any]:
    """A strategy's attempts: how often right (its first attempts apart: greedy for the plan's first strategy),
    how often no answer was read, and its token percentiles."""
    mine = [(d, gold) for draws, gold in items for d in draws if d.strategy == name]
    first = [d.answer == gold for d, gold in mine if d.number == 0]
    return {
        "task": task,
        "strategy": name,
        "attempts": len(mine),
        "right": round(sum(d.answer == gold for d, gold in mine) / len(mine), 3),
        "first_attempts_right": round(sum(first) / len(first), 3),
        "unanswered": sum(d.answer is None for d, _ in mine),
        "tokens_p50_p90_p95": [int(v) for v in np.percentile([d.tokens for d, _ in mine], [50, 90, 95])],
    }


@click.command()
@click.option("--task", "tasks", multiple=True, type=click.Choice(sorted(SHAPES)), default=sorted(SHAPES))
@click.option("--items", default=40, show_default=True, help="dev items a task (at most the dev slice)")
@click.option("--cap", default=1024, show_default=True, help="most tokens an attempt may write (below its own cap)")
@click.option("--cache", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/strategies-items.jsonl"))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/reasoning-strategies.json"))
@click.option("--report-only", is_flag=True, help="report from the cache, asking nothing")
def strategies_command(tasks: tuple[str, ...], items: int, cap: int, cache: Path, out: Path, report_only: bool) -> None:
    """The reasoning strategies and candidate plans on the dev slice: accuracy and tokens."""
    registry.load_plugins()
    settings, store = Settings(), Cache(cache)
    if not report_only:
        for task in tasks:
            asyncio.run(record_all(settings, task, items, cap, store))
    rows = [row for task in tasks for row in report(store, task)]
    for row in rows:
        click.echo(json.dumps(row))
    out.write_text(json.dumps({"cap": cap, "draws": {k: [(s.name, n) for s, n in v] for k, v in DRAWS.items()},
                               "results": rows}, indent=2) + "\n")  # fmt: skip
    click.echo(f"wrote {out}")
