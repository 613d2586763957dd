"""`ember eval reasoning`: accuracy against tokens for Ember's modes at chosen efforts on GSM8K and
ARC-Challenge; resumable, shardable and concurrent, with a report that reads only its cache.

Systems are `mode[:effort]` (default: the issue's six). Each answers every item of each task's fixed-seed
sample (`reasoning_tasks`: `DEV_ITEMS` dev items first, never reported, then `--limit`) through the same
Pipeline the server runs: zero-shot, temperature 0, seed 0. Every scored answer is appended to a JSONL
cache (`reasoning_run`), so a re-run continues where the last one stopped, `--shard i/n` processes can
share the work and the same file, and `--report` writes the numbers (`reasoning_report`) from the cache
alone. This module measures; it asserts nothing and downloads nothing.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import click

from ember import registry
from ember.config import Settings
from ember.services import Services
from ember.serving.pipeline import Pipeline
from ember.store.sql import SqlStore
from ember_tools.eval.cache import Cache, interleaved, role_models, shard_of
from ember_tools.eval.choice import Item
from ember_tools.eval.reasoning_report import partial, summarize, text, write_report
from ember_tools.eval.reasoning_run import ModeSystem, Stamp, System, Work, choice_of, item_key, run, stamp
from ember_tools.eval.reasoning_tasks import DEV_ITEMS, DEV_TAIL, TASKS, sample

SYSTEMS = (
    "ember-instant",
    "ember-thinking:low",
    "ember-thinking:medium",
    "ember-thinking:high",
    "ember-contemplating:medium",
    "ember-auto",
)
FILE = click.Path(dir_okay=False, path_type=Path)


def work_of(samples: dict[str, list[Item]], shard: str) -> list[Work]:
    """Every task's items cut to `shard`, round-robin over the tasks (item 1 of each, then item 2, …)."""
    return list(interleaved({t: [Work(t, i) for i in shard_of(items, shard)] for t, items in samples.items()}))


async def answer_all(
    settings: Settings, stamps: list[Stamp], work: list[Work], cache: Cache, opts: dict[str, Any]
) -> tuple[int, int]:
    """Run every system on `work` through one Pipeline (its store in a temporary directory): the answers added,
    and those left out because the engine could not be reached (asked again by the next run)."""
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = Pipeline(Services.open(settings, SqlStore(f"sqlite:///{Path(tmp) / 'eval.db'}")))
        systems: list[System] = [ModeSystem(s, choice_of(s.name), pipeline) for s in stamps]
        try:
            progress = await run(systems, work, cache, opts["max_tokens"], opts["concurrency"])
        finally:
            await pipeline.services.aclose()
    return sum(len(todo) for _, todo in progress.todo) - progress.unreachable, progress.unreachable


def summary_of(stamps: list[Stamp], samples: dict[str, list[Item]], opts: dict[str, Any]) -> dict[str, Any]:
    """The numbers the cache holds for these systems on the whole sample."""
    every = [Work(t, i) for t, items in samples.items() for i in items]
    keys = {s.name: {f"{w.task}/{w.item.id}": item_key(s, w, opts["max_tokens"]) for w in every} for s in stamps}
    return summarize(samples, keys, Cache(opts["cache"]).records, [s.name for s in stamps])


def command_line(opts: dict[str, Any]) -> str:
    words = ["ember", "eval", "reasoning"]
    words += [f"--system {s}" for s in opts["systems"]] if tuple(opts["systems"]) != SYSTEMS else []
    words += [f"--task {t}" for t in opts["tasks"]] if tuple(opts["tasks"]) != tuple(TASKS) else []
    words += [f"--limit {opts['limit']}", f"--seed {opts['seed']}", f"--max-tokens {opts['max_tokens']}"]
    return " ".join(words)


def meta_of(settings: Settings, stamps: list[Stamp], opts: dict[str, Any]) -> dict[str, Any]:
    """What the report says was run, on which model files."""
    modes = [registry.modes.get(choice_of(s.name).mode) for s in stamps]
    roles = tuple(sorted({role for mode in modes if mode is not None for role in mode.roles}))
    meta: dict[str, Any] = {"command": command_line(opts), "date": date.today().isoformat(), "cores": os.cpu_count()}
    meta |= {"models": dict(zip(roles, role_models(settings, roles), strict=True))}
    meta |= {
        "agents": settings.contemplating_agents,
        "dev_items": DEV_ITEMS,
        "dev_tail": DEV_TAIL,
        "cache": str(opts["cache"]),
    }
    return meta | {k: opts[k] for k in ("limit", "seed", "max_tokens")}


@click.command("reasoning")
@click.option("--system", "systems", multiple=True, default=SYSTEMS, show_default=True, help="mode[:effort], repeat")
@click.option("--task", "tasks", multiple=True, type=click.Choice(tuple(TASKS)), default=tuple(TASKS))
@click.option("--limit", default=150, show_default=True, help="items a task: the fixed-seed sample after the dev slice")
@click.option("--seed", default=0, show_default=True)
@click.option("--max-tokens", default=256, show_default=True, help="answer length cap per item")
@click.option("--shard", default="0/1", show_default=True, help="i/n: run every n-th item from the i-th")
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="items at once [the chat role's slots]")
@click.option(
    "--dev",
    is_flag=True,
    help=f"the dev slice (the first {DEV_ITEMS} and last {DEV_TAIL} items a task) instead of the sample",
)
@click.option("--report", is_flag=True, help="run nothing: write the JSON and Markdown report from the cache")
@click.option("--cache", type=FILE, default=Path("docs/reasoning-eval-items.jsonl"), show_default=True)
@click.option("--json", "json_out", type=FILE, default=Path("docs/reasoning-eval.json"), show_default=True)
@click.option("--markdown", "md_out", type=FILE, default=Path("docs/reasoning-eval.md"), show_default=True)
def reasoning(**opts: Any) -> None:
    """Accuracy, tokens and latency of modes at efforts on GSM8K and ARC-Challenge: resumable, with a report."""
    registry.load_plugins()
    settings = Settings()
    if opts["report"] and opts["dev"]:
        raise click.UsageError("the dev slice is never reported: drop --dev or --report")
    stamps = [stamp(choice_of(s), settings) for s in dict.fromkeys(opts["systems"])]
    samples = {t: sample(t, opts["limit"], opts["seed"], opts["dev"]) for t in opts["tasks"]}
    if opts["report"]:
        summary = summary_of(stamps, samples, opts)
        click.echo(write_report(meta_of(settings, stamps, opts), summary, opts["json_out"], opts["md_out"]))
        return
    opts["concurrency"] = opts["concurrency"] or settings.roles["chat"].parallel
    cache = Cache(opts["cache"])
    added, unreachable = asyncio.run(answer_all(settings, stamps, work_of(samples, opts["shard"]), cache, opts))
    summary = summary_of(stamps, samples, opts)
    left = f" ({unreachable} left out: the engine could not be reached; the next run asks again)" if unreachable else ""
    click.echo(f"{text(summary)}\n\n{added} answers added to {opts['cache']}{left}; {partial(summary) or 'complete'}")
