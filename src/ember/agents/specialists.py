"""The specialist contract and the built-in specialists the planner may call.

A specialist is a tool: a name, a description the planner reads, a JSON schema for its arguments, a
budget (tokens, seconds) and optionally the key `scope` a call needs (default `chat`; a mode-backed
specialist needs its mode's scope). `call` returns an `Observation`. A specialist that cannot do what it
was asked (bad arguments, an engine error) raises an `EmberError`; the step loop turns that, and a
timeout, into a failed observation the planner sees. Any other exception is a bug in Ember and propagates.

Built-ins: `calculator` (exact arithmetic, `ember.agents.calculator`) and specialists backed by a mode:
`answer` (ember-instant), `reason` (ember-thinking at low effort), and `health` and `shopping`
when those modes are registered. This module does not plan, loop or merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import jsonschema

from ember import registry
from ember.agents.calculator import calculate
from ember.errors import InvalidRequest
from ember.types import (
    ANONYMOUS,
    Answer,
    ChatRequest,
    Citation,
    GenerationParams,
    Message,
    Person,
    ReasoningEffort,
    Usage,
)

if TYPE_CHECKING:
    from ember.services import Services

DEFAULT_SCOPE = "chat"
TASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"task": {"type": "string", "minLength": 1, "maxLength": 200}},
    "required": ["task"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Budget:
    """The most a single call may spend."""

    max_tokens: int = 512
    timeout_s: float = 60.0


@dataclass(frozen=True)
class Observation:
    """What a call produced (or why it failed), with its cost and timing (seconds from the run's start)."""

    text: str
    ok: bool = True
    usage: Usage = field(default_factory=Usage)
    citations: tuple[Citation, ...] = ()
    started_s: float = 0.0
    ended_s: float = 0.0


@dataclass(frozen=True)
class Context:
    """What a specialist may use: the server's services, the asker (for consent and their tenant), the sampling seed,
    the caller's key scopes (None: all), which bound the specialists a plan may call, and the descriptions of
    the images in the conversation, which a mode's sub-task reads beside its task."""

    services: Services
    user: Person = ANONYMOUS
    seed: int | None = None
    scopes: frozenset[str] | None = None
    seen: tuple[str, ...] = ()  # the conversation's image descriptions (machine guesses), for every sub-task


class Specialist(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str:
        """What the planner reads to choose it."""

    @property
    def input_schema(self) -> dict[str, Any]: ...

    @property
    def budget(self) -> Budget: ...

    @property
    def scope(self) -> str:
        """The key scope a call needs (`chat` for most)."""

    def available(self) -> bool:
        """Whether it can be offered now (e.g. the mode behind it is registered)."""

    async def call(self, args: dict[str, Any], context: Context, max_tokens: int) -> Observation:
        """Do the work for `args` (already checked against `input_schema`), spending ≤ `max_tokens`."""
        ...


def allowed(specialist: Specialist, scopes: frozenset[str] | None) -> bool:
    """Whether a caller with `scopes` (None: all) may have `specialist` called for them."""
    return scopes is None or specialist.scope in scopes


def check_args(specialist: Specialist, args: object) -> dict[str, Any]:
    """`args` if they match the specialist's schema; InvalidRequest (a failed observation) otherwise."""
    try:
        jsonschema.validate(args, specialist.input_schema)
    except jsonschema.ValidationError as exc:
        raise InvalidRequest(f"{specialist.name}: bad arguments: {exc.message}") from exc
    assert isinstance(args, dict)
    return args


@dataclass(frozen=True)
class Calculator:
    name: str = "calculator"
    description: str = (
        "Exact arithmetic. Input: one arithmetic expression with numbers only, e.g. (17.5*4 - 3)/2 or 15% * 80 "
        "or sqrt(2). Use it for every calculation."
    )
    input_schema: dict[str, Any] = field(
        default_factory=lambda: {
            "type": "object",
            "properties": {"expression": {"type": "string", "minLength": 1, "maxLength": 120}},
            "required": ["expression"],
            "additionalProperties": False,
        }
    )
    budget: Budget = Budget(max_tokens=0, timeout_s=5.0)
    scope: str = DEFAULT_SCOPE

    def available(self) -> bool:
        return True

    async def call(self, args: dict[str, Any], context: Context, max_tokens: int) -> Observation:
        return Observation(calculate(str(args["expression"])).text())


@dataclass(frozen=True)
class ModeSpecialist:
    """A specialist that asks one of Ember's modes; offered only while that mode is registered."""

    name: str
    mode: str
    description: str
    budget: Budget = Budget()
    effort: ReasoningEffort | None = None
    input_schema: dict[str, Any] = field(default_factory=lambda: TASK_SCHEMA)

    def available(self) -> bool:
        return self.mode in registry.modes

    @property
    def scope(self) -> str:
        """The scope the mode behind it needs (ember-health: `health`, ember-shopping: `shopping`)."""
        mode = registry.modes.get(self.mode)
        return mode.scope if mode is not None else DEFAULT_SCOPE

    async def call(self, args: dict[str, Any], context: Context, max_tokens: int) -> Observation:
        mode = registry.modes.get(self.mode)
        if mode is None:
            raise InvalidRequest(f"{self.name}: the mode {self.mode!r} is not available")
        request = ChatRequest(
            model=self.mode,
            messages=[Message("user", str(args["task"]), descriptions=context.seen)],
            params=GenerationParams(max_tokens=max_tokens, seed=context.seed),
            user=context.user,
            reasoning_effort=self.effort,
        )
        answer = await Answer.of(mode.run(request, context.services))
        return Observation(answer.text.strip(), usage=answer.usage or Usage(), citations=answer.citations)


BUILT_INS: tuple[Specialist, ...] = (
    Calculator(),
    ModeSpecialist(
        "answer",
        "ember-instant",
        "General knowledge, writing, advice and casual questions; fast. Input: the self-contained sub-question.",
        Budget(max_tokens=384, timeout_s=60.0),
    ),
    ModeSpecialist(
        "reason",
        "ember-thinking",
        "Careful step-by-step reasoning for a hard question or a word problem. Input: the self-contained question.",
        Budget(max_tokens=384, timeout_s=120.0),
        effort="low",
    ),
    ModeSpecialist(
        "health",
        "ember-health",
        "Health and medical information with sources and emergency triage. Input: the health question.",
        Budget(max_tokens=384, timeout_s=90.0),
    ),
    ModeSpecialist(
        "shopping",
        "ember-shopping",
        "Product recommendations from the catalogue and shared posts. Input: what the person wants to buy.",
        Budget(max_tokens=384, timeout_s=90.0),
    ),
)

for _specialist in BUILT_INS:
    registry.specialists.add(_specialist.name, _specialist)
