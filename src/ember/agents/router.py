"""How `ember-auto` picks a route: cheap text features, then the first rule of a readable table that matches.

Images first (to a mode that describes them); then the shape of the task, because its words mislead (a
word problem that "buys" apples is arithmetic, not shopping; a biology question about breathing is science,
not a health worry): a bare arithmetic expression goes to the calculator; a task to work out goes to
`ember-contemplating` when the caller asked for high reasoning effort, else a multiple-choice question to a
direct answer from the `chat` model, a word problem with numbers to a program that model writes and the
calculator runs (escalated to `ember-thinking` when it does not run), several separate asks to the planner;
then intent: health and
shopping wording to those modes when they are registered and the caller's key may use them; everything
else to `ember-instant`. The features are regular
expressions over the last user message (microseconds; no model call): they are measured by `ember eval
auto`, not trusted. This module decides; it runs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ember import registry
from ember.agents.calculator import CalculationError, calculate, normalise
from ember.types import ChatRequest, ReasoningEffort, Route, last_user_text

_WORD = r"(?<![\w-])(?:{})(?![\w-])"
_HEALTH = re.compile(
    _WORD.format(
        "symptoms?|diagnos\\w*|disease|illness|infection|fever|rash|pain|ache|headache|migraine|nausea|vomit\\w*|"
        "diarrh\\w*|dizz\\w*|cough\\w*|asthma|diabet\\w*|blood pressure|hypertension|cancer|tumou?r|allerg\\w*|"
        "medication|medicine|drug|dose|dosage|side effects?|prescri\\w*|doctor|physician|nurse|pharmac\\w*|"
        "pregnan\\w*|vaccin\\w*|injur\\w*|swollen|swelling|bleeding|chest|breath\\w*|heart attack|stroke|"
        "depress\\w*|anxiety|suicid\\w*|overdose"
    ),
    re.IGNORECASE,
)
_SHOPPING = re.compile(
    _WORD.format(
        "buy|buying|purchase|shop|shopping|recommend me|product|gift|deal|cheap(?:est)?|under \\$?\\d+|"
        "budget of|price|add to cart|which (?:\\w+ ){0,2}should i (?:buy|get)"
    ),
    re.IGNORECASE,
)
_ASK = re.compile(r"^\s*(?:please\s+)?(?:what(?:'s| is)|calculate|compute|evaluate|how much is|solve)\s+", re.I)
_ARITHMETIC = re.compile(r"^[\d\s+\-*/^().,%]*\d[\d\s+\-*/^().,%]*$")  # after normalise()
_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")
# a quantity asked for: "how many …?", "what is the total …?", or told to work it out ("… calculate the number
# of votes the loser got."; "find" is left out: "find the best laptop under $500" is shopping)
_QUANTITY = re.compile(
    r"\b(?:how (?:many|much|long|far|old)|what (?:is|was) the (?:total|sum|cost|price|number)|"
    r"(?:calculate|compute|determine|work out|figure out) (?:the|how|what|his|her|their|its)\b)",
    re.I,
)
_OPTION = re.compile(r"(?m)^\s*\(?[A-E][).:]\s+\S")
_ENUMERATED = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•])\s+\S")
# items introduced as the material of one task ("assign the following questions to…", "for each equation…")
_DATA_LIST = re.compile(
    r"\b(?:the following|each (?:of (?:the|these) )?\w+|a (?:set|list) of|these \w+|below)\b|```", re.I
)
_SEPARATE_ASK = re.compile(r"\b(?:also|at the same time|separately|in addition)\b", re.I)


@dataclass(frozen=True)
class Features:
    """What the router reads from a request; all cheap."""

    images: bool
    health: bool
    shopping: bool
    expression: str | None  # a bare arithmetic expression the calculator can evaluate
    numbers: int
    quantity_question: bool
    options: int
    questions: int
    enumerated: int
    separate_asks: bool
    data_list: bool  # the questions or items are material for one task, not separate asks
    effort: str | None = None  # the reasoning_effort the caller asked for, if any
    tools: bool = False  # the caller offers functions, or the conversation holds calls to them

    def signals(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v not in (False, None, 0)}


def features(request: ChatRequest) -> Features:
    text = last_user_text(request.messages)
    return Features(
        images=any(m.images for m in request.messages),
        health=bool(_HEALTH.search(text)),
        shopping=bool(_SHOPPING.search(text)),
        expression=bare_expression(text),
        numbers=len(_NUMBER.findall(text)),
        quantity_question=bool(_QUANTITY.search(text)),
        options=options_in(text),
        questions=len(re.findall(r"\?(?:\s|$)", text)),
        enumerated=len(_ENUMERATED.findall(text)),
        separate_asks=bool(_SEPARATE_ASK.search(text)),
        data_list=bool(_DATA_LIST.search(text)),
        effort=request.reasoning_effort,
        tools=uses_tools(request),
    )


def uses_tools(request: ChatRequest) -> bool:
    """Whether `request` offers tools or its conversation holds tool calls (only a mode that calls reads it)."""
    return bool(request.params.tools) or any(m.tool_calls or m.role == "tool" for m in request.messages)


def options_in(text: str) -> int:
    """How many lettered options ("A) …", "(B) …") `text` lists: 2 or more make it multiple choice."""
    return len(_OPTION.findall(text))


def bare_expression(text: str) -> str | None:
    """The arithmetic in "what is 17*23?" or "(2+3)^2", if that is all the message asks; else None."""
    candidate = normalise(_ASK.sub("", text.strip()))
    if not _ARITHMETIC.match(candidate) or not re.search(r"\d\s*[-+*/%]|\*\*", candidate):
        return None
    try:
        calculate(candidate)
    except CalculationError:
        return None
    return candidate


def word_problem(f: Features) -> bool:
    return f.questions <= 1 and ((f.numbers >= 1 and f.quantity_question) or (f.numbers >= 2 and f.questions >= 1))


def _multi_part(f: Features) -> bool:
    asks = f.questions >= 2 or f.enumerated >= 2 or (f.separate_asks and f.questions >= 1)
    return f.options == 0 and not f.data_list and asks


@dataclass(frozen=True)
class Rule:
    name: str
    matches: Callable[[Features], bool]
    target: str
    reason: str
    effort: ReasoningEffort | None = None


RULES: tuple[Rule, ...] = (
    Rule(
        "tools, thinking",
        lambda f: f.tools and f.effort is not None,
        "ember-thinking",
        "functions offered and reasoning effort asked for: reasons, then calls or answers",
    ),
    Rule("tools", lambda f: f.tools, "ember-instant", "functions offered: calls one or answers at once"),
    Rule("images", lambda f: f.images, "ember-instant", "the request has images: described, then answered"),
    Rule("arithmetic", lambda f: f.expression is not None, "calculator", "a bare arithmetic expression"),
    Rule(
        "depth asked",
        lambda f: f.effort == "high" and (f.options >= 2 or word_problem(f)),
        "ember-contemplating",
        "a task to work out, and the caller asked for high reasoning effort: several agents, then a vote",
        "high",
    ),
    Rule("multiple choice", lambda f: f.options >= 2, "choice", "a multiple-choice question: answered directly"),
    Rule(
        "word problem",
        word_problem,
        "program",
        "a question with numbers to work out: the model writes the arithmetic, the calculator runs it",
        "low",
    ),
    Rule("multi-part", _multi_part, "planner", "several separate asks: planned as sub-tasks"),
    Rule("health", lambda f: f.health, "ember-health", "health wording: grounded health mode with triage"),
    Rule("shopping", lambda f: f.shopping, "ember-shopping", "shopping wording: the recommender"),
    Rule("default", lambda f: True, "ember-instant", "a direct question: answered at once"),
)
BUILT_IN_TARGETS = ("calculator", "choice", "program", "planner")


def usable(target: str, request: ChatRequest) -> bool:
    """Whether `target` exists here, the caller's key may use it, and it calls tools if the request needs that."""
    if target in BUILT_IN_TARGETS:
        return not uses_tools(request)
    mode = registry.modes.get(target)
    allowed = mode is not None and (request.scopes is None or mode.scope in request.scopes)
    return allowed and mode is not None and (mode.tools or not uses_tools(request))


def choose(request: ChatRequest) -> Route:
    """The first rule that matches and whose target is usable for this request."""
    found = features(request)
    for rule in RULES:
        if rule.matches(found) and usable(rule.target, request):
            return Route(rule.target, rule.reason, rule.effort, {"rule": rule.name, **found.signals()})
    raise AssertionError("the default rule always matches")
