"""Ways to solve a task that ends on a short, checkable answer, and the vote that merges several attempts.

The reasoning modes are built on these: `ember-thinking` runs attempts one after another until enough of
them agree (`next_strategy`), `ember-contemplating` runs them as concurrent agents (`strategy_at`). The
task's shape (`shape_of`, from the router's cheap features) decides which strategies apply (`PLANS`):
- `numeric`, a word problem with numbers: `program` (the model writes straight-line arithmetic and the
  sandboxed calculator of `ember.agents.program` runs it exactly), `program, planned` (comments first, then
  the code: a second way to the same number) and `prose` (a step-by-step derivation); thinking checks the
  first answer by repeating its strategy (self-consistency), contemplating's agents take all three;
- `choice`, a question with lettered options: `direct` (the option named at once, with one reason), greedy
  first, then sampled: weighing each option in turn (`elimination`) was measured on the dev slice and chose
  worse than naming one at once, so no plan uses it;
- `open`, anything else: nothing short to check; the modes reason in prose (`shape_of` says so, no plan).
The plans were chosen with `ember eval strategies` on the dev slice (docs/reasoning.md). An attempt streams
what the model writes (the reasoning a client sees), then its observation: a program's exact result, or why
the program did not run (an import, a loop, a huge power: refused, never executed). Attempts after a plan's
first run sampled, with their own seed, so a repeat is a second opinion.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

from ember.agents.answers import ANSWER_FORMAT, final_letter, final_number, letters_in, number_of, short_answer
from ember.agents.calculator import CalculationError
from ember.agents.program import PROGRAM_PROMPT, PROGRAM_TOKENS, code_of, run_program
from ember.agents.router import features, word_problem
from ember.engines.base import Engine
from ember.engines.passes import with_system
from ember.types import Answer, ChatRequest, GenerationParams, Message, Usage, last_user_text

Shape = Literal["numeric", "choice", "open"]
SAMPLED_TEMPERATURE = 0.7

PLANNED_PROGRAM_PROMPT = (
    "Solve the user's problem with a short Python program. First write one comment line per fact in the "
    "problem, with its number and unit; then compute with arithmetic only: one assignment per line, no imports, "
    "no functions, no loops, no input(). Store the final number in a variable named answer. "
    "Reply with the code only, in one ```python block."
)
PROSE_PROMPT = (
    "Solve the user's problem step by step: list the facts, do each calculation on its own line, and check "
    f"the result against the question. {ANSWER_FORMAT}"
)
ELIMINATION_PROMPT = (
    "Answer the multiple-choice question. Go through the options one at a time and say in one sentence why "
    f"each one is right or wrong, then pick the best. {ANSWER_FORMAT}"
)
DIRECT_PROMPT = (
    'Answer the multiple-choice question directly: start with a line of the form "Answer: <letter>", then '
    "give one short sentence saying why."
)


Reader = Callable[[str, str], "str | None"]
"""Reads the short answer a solution commits to, given the solution and the question."""


def read_number(text: str, question: str) -> str | None:
    return final_number(text)


def read_letter(text: str, question: str) -> str | None:
    return final_letter(text, letters_in(question) or "ABCDE")


def read_answer_line(text: str, question: str) -> str | None:
    return short_answer(text)


@dataclass(frozen=True)
class Strategy:
    """One way to solve: its prompt, the most tokens an attempt may write, whether what it writes is a program
    to run, how its answer is read, and its vote weight. Caps are above the 95th percentile of the lengths
    `ember eval strategies` measured on the dev slice; weights are the accuracies it measured there
    (docs/reasoning.md: 12 dev items a task)."""

    name: str
    prompt: str
    tokens: int
    runs_code: bool = False
    reads: Reader = read_number
    weight: float = 1.0


PROGRAM = Strategy("program", PROGRAM_PROMPT, PROGRAM_TOKENS, runs_code=True, weight=0.67)
PLANNED_PROGRAM = Strategy("program, planned", PLANNED_PROGRAM_PROMPT, 512, runs_code=True, weight=0.58)
PROSE = Strategy("prose", PROSE_PROMPT, 512, weight=0.5)
DIRECT = Strategy("direct", DIRECT_PROMPT, 128, reads=read_letter, weight=0.5)
ELIMINATION = Strategy("elimination", ELIMINATION_PROMPT, 512, reads=read_letter, weight=0.33)
PLANS: dict[Shape, tuple[Strategy, ...]] = {"numeric": (PROGRAM, PLANNED_PROGRAM, PROSE), "choice": (DIRECT,)}


def shape_of(request: ChatRequest) -> Shape:
    """What the last user message asks for: a number worked out, an option chosen, or anything else."""
    found = features(request)
    if found.options >= 2:
        return "choice"
    return "numeric" if word_problem(found) and not found.tools else "open"


def strategy_at(plan: tuple[Strategy, ...], index: int) -> Strategy:
    """The plan's `index`-th attempt (0-based): its strategies in order, then again from the first."""
    return plan[index % len(plan)]


def next_strategy(plan: tuple[Strategy, ...], done: list[Attempt]) -> Strategy:
    """`ember-thinking`'s next attempt: the plan's next strategy while no attempt has reached an answer; after
    that, the strategy of the first that did, repeated (sampled) to check it. On the dev slice, checking a
    program with more programs was as accurate as with a planned program and prose, for a third fewer tokens."""
    answered = next((a for a in done if a.answer is not None), None)
    return answered.strategy if answered else strategy_at(plan, len(done))


@dataclass
class Attempt:
    """One attempt at the task: what it wrote and observed, the short answer it commits to, its cost."""

    index: int
    strategy: Strategy
    text: str = ""
    observation: str = ""
    answer: str | None = None
    usage: Usage = field(default_factory=Usage)

    @property
    def trace(self) -> str:
        """What the attempt wrote followed by what running it showed (the text a later pass reads)."""
        return f"{self.text}\n{self.observation}".strip()

    @property
    def shown(self) -> str:
        """The attempt as the person reads it when it wins: a program with its exact result, or the solution."""
        if not self.strategy.runs_code:
            return self.text
        return f"Worked out exactly:\n\n```python\n{code_of(self.text)}\n```\n\nAnswer: {self.answer}"


async def solve(
    engine: Engine, messages: list[Message], attempt: Attempt, cap: int, seed: int | None
) -> AsyncIterator[str]:
    """Run `attempt` (at most `cap` tokens), streaming what it writes, then its observation; fill it in.
    The first attempt of a plan decodes greedily, later ones sample with seed `seed + index`."""
    strategy = attempt.strategy
    sampled = attempt.index > 0
    params = GenerationParams(
        max_tokens=max(1, min(strategy.tokens, cap)),
        temperature=SAMPLED_TEMPERATURE if sampled else 0.0,
        seed=None if seed is None else seed + attempt.index,
    )
    written = Answer()
    async for delta in engine.stream(with_system(messages, strategy.prompt), params):
        written.add(delta)
        if piece := delta.reasoning + delta.content:
            yield piece
    attempt.text, attempt.usage = (written.thought + written.text).strip(), written.usage or Usage()
    if strategy.runs_code:
        attempt.answer, attempt.observation = observe(attempt.text)
        yield f"\n{attempt.observation}\n"
    else:
        attempt.answer = strategy.reads(attempt.text, last_user_text(messages))


def observe(text: str) -> tuple[str | None, str]:
    """Run the program in `text`: (its exact answer as a number, what the model is shown about it)."""
    try:
        value = run_program(code_of(text))
    except CalculationError as exc:
        return None, f"Result: the program did not run ({exc.message})."
    return number_of(value.decimal), f"Result: answer = {value.decimal}"


@dataclass(frozen=True)
class Verdict:
    """The answer the attempts' weighted vote chose, how many attempts gave it, and how many answered."""

    answer: str | None
    agreeing: int
    answered: int


def vote(attempts: list[Attempt]) -> Verdict:
    """Each attempt with a short answer votes with its strategy's weight; the heaviest answer wins, a tie
    goes to the answer given first. No answer at all: Verdict(None, 0, 0)."""
    weights: dict[str, float] = {}
    for attempt in attempts:
        if attempt.answer is not None:
            weights[attempt.answer] = weights.get(attempt.answer, 0.0) + attempt.strategy.weight
    if not weights:
        return Verdict(None, 0, 0)
    best = max(weights.values())
    winner = next(answer for answer, weight in weights.items() if weight == best)
    agreeing = sum(a.answer == winner for a in attempts)
    return Verdict(winner, agreeing, sum(a.answer is not None for a in attempts))


def goes_on(done: list[Attempt], plan: tuple[Strategy, ...], most: int, quorum: int, left: int) -> bool:
    """Whether `ember-thinking` makes another attempt after `done`: not once `quorum` of them agree or the
    budget (`left` tokens) is spent; else while fewer than `most` were made, or, while none has reached an
    answer, as long as the plan has a strategy not tried yet."""
    verdict = vote(done)
    if left <= 0 or (done and verdict.agreeing >= quorum):
        return False
    return len(done) < most or (verdict.answer is None and len(done) < len(plan))


def agreed(done: list[Attempt]) -> bool:
    """Whether `ember-contemplating` stops after a wave: every attempt that reached an answer (two at least)
    gives the same one."""
    verdict = vote(done)
    return verdict.answered >= 2 and verdict.agreeing == verdict.answered


def spent(attempts: list[Attempt]) -> Usage:
    """All attempts' tokens, their completion tokens counted as reasoning."""
    total = sum((a.usage for a in attempts), Usage())
    return Usage(total.prompt_tokens, total.completion_tokens, total.completion_tokens)
