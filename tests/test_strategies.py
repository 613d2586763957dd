"""The reasoning strategies without a model: the task's shape, reading short answers, running a program's
text in the sandbox, and the weighted vote."""

from __future__ import annotations

import pytest

from ember.agents.answers import final_letter, final_number, letters_in, number_of, short_answer
from ember.agents.strategies import (
    DIRECT,
    PROGRAM,
    PROSE,
    Attempt,
    agreed,
    goes_on,
    observe,
    shape_of,
    strategy_at,
    vote,
)
from ember.modes.contemplating import majority
from ember.types import ChatRequest, GenerationParams, Message, Tool


def request(text: str, **params: object) -> ChatRequest:
    return ChatRequest("ember-thinking", [Message("user", text)], GenerationParams(**params))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so 16 - 3 - 4 = 9, and 9 * 2 = 18.\nAnswer: $18", "18"),
        ("Answer: 1,200.50 dollars", "1200.5"),
        ("The answer is (B) because", "B"),
        ("Answer: C. Mitochondria", "C"),
        ("Answer: it depends on the season and on 3 other things", None),
        ("no conclusion here", None),
        ("Answer: 4\nOn reflection... Answer: 5", "5"),
    ],
)
def test_short_answer(text: str, expected: str | None) -> None:
    assert short_answer(text) == expected


def test_number_of() -> None:
    assert number_of("about -3.50 m") == "-3.5"
    assert number_of("none") is None


def test_shape_of_a_request() -> None:
    assert shape_of(request("Tom has 3 bags of 12 apples and eats 5. How many are left?")) == "numeric"
    assert shape_of(request("Which is a gas?\nA) iron\nB) neon\nC) salt")) == "choice"
    assert shape_of(request("Why is the sky blue?")) == "open"
    tool = Tool("add", "adds", {"type": "object"})
    assert shape_of(request("Tom has 3 bags of 12 apples. How many apples?", tools=(tool,))) == "open"


@pytest.mark.parametrize(
    ("program", "answer", "said"),
    [
        ("```python\nprice = 12.5\nanswer = price * 4\n```", "50", "Result: answer = 50"),
        ("answer = 1 / 3 + 1 / 6", "0.5", "Result: answer = 0.5"),
        ("```python\nimport os\nanswer = 1\n```", None, "did not run (unsupported statement 'import os'"),
        ("```python\nwhile True:\n    pass\n```", None, "did not run (unsupported statement"),
        ("```python\nanswer = 9 ** 99999\n```", None, "did not run (exponents are limited"),
        ("```python\nanswer = open('/etc/passwd')\n```", None, "did not run"),
        ("I would rather not write code.", None, "did not run"),
    ],
)
def test_a_program_runs_in_the_sandbox_or_says_why_not(program: str, answer: str | None, said: str) -> None:
    got, observation = observe(program)
    assert got == answer and said in observation


def attempt(index: int, answer: str | None, strategy: object = PROGRAM) -> Attempt:
    return Attempt(index, strategy, answer=answer)  # type: ignore[arg-type]


def test_the_vote_weighs_strategies_and_ties_go_to_the_first_answer() -> None:
    assert vote([attempt(0, "41"), attempt(1, "42", PROSE), attempt(2, "42", PROSE)]).answer == "42"  # 1.2 > 1.0
    assert vote([attempt(0, "41"), attempt(1, "42", PROSE)]).answer == "41"  # a program outweighs one derivation
    assert vote([attempt(0, "7"), attempt(1, "8")]).answer == "7"
    tally = vote([attempt(0, None), attempt(1, "B", DIRECT), attempt(2, "B")])
    assert (tally.answer, tally.agreeing, tally.answered) == ("B", 2, 2)
    assert vote([attempt(0, None)]).answer is None


def test_majority_needs_more_than_half_of_the_attempts() -> None:
    assert majority([attempt(0, "42"), attempt(1, "41"), attempt(2, "42")]).answer == "42"
    assert majority([attempt(0, "7"), attempt(1, "8"), attempt(2, None)]).answer == "7"  # a tie: the first given
    assert majority([attempt(0, "7"), attempt(1, None), attempt(2, None)]).answer is None


def test_a_plan_repeats_its_strategies_in_order() -> None:
    plan = (PROGRAM, PROSE)
    assert [strategy_at(plan, i).name for i in range(5)] == ["program", "prose", "program", "prose", "program"]


def test_final_number_and_letter_read_less_formal_answers() -> None:
    assert final_number("so she pays 18 dollars in all.") == "18"
    assert final_number("The answer is $1,250.") == "1250"
    assert final_number("Answer: 7\nno wait") == "7"
    assert final_number("no numbers") is None
    question = "Which is a gas?\nA) iron\nB) neon\n(C) salt"
    assert letters_in(question) == "ABC"
    assert final_letter("I think (B) fits best.", letters_in(question)) == "B"
    assert final_letter("B. Neon is a noble gas.", "ABC") == "B"
    assert final_letter("I. Iron is a metal.", "ABC") is None  # "I." is not one of the options


def test_thinking_goes_on_until_a_quorum_agrees_or_attempts_or_budget_run_out() -> None:
    plan = (PROGRAM, PROSE)
    five, seven, none = (Attempt(i, PROGRAM, answer=a) for i, a in enumerate(("5", "7", None)))
    assert goes_on([], plan, most=1, quorum=1, left=100)
    assert not goes_on([five], plan, most=1, quorum=1, left=100)  # low: one attempt that answered
    assert goes_on([none], plan, most=1, quorum=1, left=100)  # none answered: the plan's next strategy
    assert not goes_on([none, Attempt(1, PROSE)], plan, most=1, quorum=1, left=100)  # the plan is used up
    assert goes_on([five, seven], plan, most=3, quorum=2, left=100)
    assert not goes_on([five, Attempt(1, PROSE, answer="5")], plan, most=3, quorum=2, left=100)  # two agree
    assert not goes_on([five, seven], plan, most=3, quorum=2, left=0)  # the budget is spent


def test_contemplating_stops_when_every_answer_agrees_and_two_at_least_answered() -> None:
    answers = [Attempt(i, PROGRAM, answer=a) for i, a in enumerate(("5", None, "5"))]
    assert agreed(answers)
    assert not agreed(answers[:2])  # one answer is no agreement
    assert not agreed([*answers, Attempt(3, PROSE, answer="6")])
