"""What the reasoning modes (`ember-thinking`, `ember-contemplating`) share: the token budgets each
`reasoning_effort` buys. Reading the short answer a solution commits to is `ember.agents.answers`; the
strategies their attempts follow, `ember.agents.strategies`.

The packaged models have no native thinking tokens, so thinking is an ordinary generation that a prompt
asks for and a `max_tokens` cap bounds. This module registers no mode and knows nothing of HTTP.
"""

from __future__ import annotations

from ember.types import ChatRequest, ReasoningEffort

DEFAULT_EFFORT: ReasoningEffort = "medium"
THINKING_BUDGET: dict[ReasoningEffort, int] = {"low": 512, "medium": 1536, "high": 3072}
"""Most tokens `ember-thinking` may think (all its attempts together) before its answer is forced: low lets
one whole attempt finish (a program or a prose solution, docs/reasoning.md has their measured lengths)."""
THINKING_ATTEMPTS: dict[ReasoningEffort, tuple[int, int]] = {"low": (1, 1), "medium": (3, 2), "high": (5, 3)}
"""`ember-thinking` on a task with a checkable answer: the most attempts, and how many that agree end it."""
CONTEMPLATING_BUDGET: dict[ReasoningEffort, int] = {"low": 2048, "medium": 6144, "high": 12288}
"""Most completion tokens all of `ember-contemplating`'s agents and its aggregator spend together."""
CONTEMPLATING_WAVES: dict[ReasoningEffort, int] = {"low": 1, "medium": 2, "high": 3}
"""`ember-contemplating`: the most waves of concurrent agents; a wave runs only if the earlier ones disagree."""


def effort_of(request: ChatRequest) -> ReasoningEffort:
    return request.reasoning_effort or DEFAULT_EFFORT
