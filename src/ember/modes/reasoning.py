"""What the reasoning modes (`ember-thinking`, `ember-contemplating`) share: the token budgets each
`reasoning_effort` buys and reading the short answer ("Answer: 42", "Answer: B") a solution commits to.
One collected generation pass and prompt assembly are `ember.engines.passes`.

The packaged models have no native thinking tokens, so thinking is an ordinary generation that a prompt
asks for and a `max_tokens` cap bounds. This module registers no mode and knows nothing of HTTP.
"""

from __future__ import annotations

import re

from ember.types import ChatRequest, ReasoningEffort

DEFAULT_EFFORT: ReasoningEffort = "medium"
THINKING_BUDGET: dict[ReasoningEffort, int] = {"low": 256, "medium": 1024, "high": 2048}
"""Most tokens `ember-thinking` may think before its answer is forced."""
CONTEMPLATING_BUDGET: dict[ReasoningEffort, int] = {"low": 2048, "medium": 6144, "high": 12288}
"""Most completion tokens all of `ember-contemplating`'s agents and its aggregator spend together."""

ANSWER_FORMAT = 'End with a last line of the form "Answer: <the short final answer>".'
_ANSWER_LINE = re.compile(r"answer(?:\s+is)?\s*[:=]?\s*(.+)", re.IGNORECASE)
_LETTER = re.compile(r"^\(?([A-J])(?:[\).:]|\s|$)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def effort_of(request: ChatRequest) -> ReasoningEffort:
    return request.reasoning_effort or DEFAULT_EFFORT


def number_of(text: str) -> str | None:
    """The first number in `text`, normalised ("1,200.50" -> "1200.5", "18.0" -> "18"); None if none."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    raw = match.group().replace(",", "")
    return raw.rstrip("0").rstrip(".") if "." in raw else raw


def short_answer(text: str) -> str | None:
    """The short, checkable answer a solution commits to on its last "Answer: ..." line: a choice letter
    (A-J) or a normalised number. None when there is no such line or it holds anything longer."""
    matches = _ANSWER_LINE.findall(text)
    if not matches:
        return None
    said = str(matches[-1]).strip().strip("*").strip()
    if letter := _LETTER.match(said):
        return letter.group(1)
    said = said.removeprefix("$").rstrip(".")
    number = number_of(said)
    if number is None or len(said) > len(number) + 12:  # a sentence that merely contains a number
        return None
    return number
