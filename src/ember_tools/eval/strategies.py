"""`ember eval strategies`: each reasoning strategy alone, on the dev slice only, to choose budgets and
vote weights from measurements rather than guesses.

For every dev item of GSM8K (the `numeric` plan) and ARC-Challenge (the `choice` plan), each strategy of the
plan makes one greedy attempt on the `chat` role with a generous cap (`--cap`); the report gives, per
strategy, how often its short answer is right (with a Wilson 95% interval), how often it reached none, and the
50th / 90th / 95th percentiles of the tokens it wrote, and how many attempts the cap cut. The dev slice is
`reasoning_tasks.DEV_ITEMS` items a task, never in `ember eval reasoning`'s reported sample; this command
never reads that sample. Results go to a JSON file. It measures; it asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from ember import registry
from ember.agents.strategies import PLANS, Attempt, Shape, solve
from ember.config import Settings
from ember.engines.pool import EnginePool
from ember.types import Message
from ember_tools.eval.paired import wilson
from ember_tools.eval.reasoning_tasks import TASKS, sample

SHAPES: dict[str, Shape] = {"gsm8k": "numeric", "arc_challenge": "choice"}


@dataclass
class Tally:
    correct: int = 0
    unanswered: int = 0
    cut: int = 0
    tokens: list[int] = field(default_factory=list)

    def row(self, strategy: str, task: str) -> dict[str, object]:
        n = len(self.tokens)
        low, high = wilson(self.correct, n)
        p50, p90, p95 = (int(v) for v in np.percentile(self.tokens, [50, 90, 95])) if n else (0, 0, 0)
        return {
            "task": task,
            "strategy": strategy,
            "n": n,
            "accuracy": self.correct / n if n else 0.0,
            "interval95": [round(low, 3), round(high, 3)],
            "unanswered": self.unanswered,
            "cut_by_cap": self.cut,
            "tokens_p50_p90_p95": [p50, p90, p95],
        }


async def measure(settings: Settings, task: str, items: int, cap: int) -> list[dict[str, object]]:
    pool = EnginePool(settings)
    engine = await pool.get("chat")
    plan = PLANS[SHAPES[task]]
    tallies = {s.name: Tally() for s in plan}
    try:
        for item in tqdm(sample(task, 0, 0, dev=True)[:items], desc=task, unit="item"):
            messages = [Message("user", f"{item.question}\n\n{TASKS[task].instruction}")]
            for strategy in plan:
                attempt = Attempt(0, replace(strategy, tokens=cap))
                async for _ in solve(engine, messages, attempt, cap, 0):
                    pass
                tally = tallies[strategy.name]
                tally.tokens.append(attempt.usage.completion_tokens)
                tally.cut += attempt.usage.completion_tokens >= cap
                tally.unanswered += attempt.answer is None
                tally.correct += attempt.answer == item.gold
    finally:
        await pool.close()
    return [tally.row(name, task) for name, tally in tallies.items()]


@click.command()
@click.option("--task", "tasks", multiple=True, type=click.Choice(sorted(SHAPES)), default=sorted(SHAPES))
@click.option("--items", default=20, show_default=True, help="dev items a task (at most the dev slice)")
@click.option("--cap", default=1024, show_default=True, help="tokens an attempt may write")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/reasoning-strategies.json"))
def strategies(tasks: tuple[str, ...], items: int, cap: int, out: Path) -> None:
    """Each reasoning strategy alone on the dev slice: accuracy and token percentiles."""
    registry.load_plugins()
    settings = Settings()
    rows = [row for task in tasks for row in asyncio.run(measure(settings, task, items, cap))]
    for row in rows:
        click.echo(json.dumps(row))
    out.write_text(json.dumps({"dev_items_per_task": items, "cap": cap, "results": rows}, indent=2) + "\n")
    click.echo(f"wrote {out}")
