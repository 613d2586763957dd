"""Plain data passed between the layers: messages in, deltas out. No behaviour, no I/O."""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Image:
    """An image that intake checked: encoded `data` (`mime` image/png, image/jpeg, image/webp), upright, one
    frame; `sha256` of `data` names it (caches key on it)."""

    data: bytes = field(repr=False)
    mime: str
    width: int
    height: int
    sha256: str


@dataclass(frozen=True)
class Message:
    """One chat turn: its text (text parts are joined by intake), the images it carries, in order, and their
    text descriptions once the vision specialists made them (for models that cannot see)."""

    role: Role
    content: str
    images: tuple[Image, ...] = ()
    descriptions: tuple[str, ...] = ()

    def as_text(self) -> str:
        """The turn as a model that cannot see reads it: its images' descriptions, then its text."""
        return "\n\n".join([*self.descriptions, self.content]).strip() if self.descriptions else self.content


ReasoningEffort = Literal["low", "medium", "high"]


@dataclass(frozen=True, order=True)
class Person:
    """Whose data: `tenant` is an API key's owner ("" for the operator and keyless local use), `name` the
    request's `user` within it ("" for a key's owner acting for itself). Two persons are the same only when
    both parts are equal, byte for byte: never by prefix, case or Unicode form."""

    tenant: str
    name: str

    @property
    def label(self) -> str:
        """How the API shows this person (`owner/user`, the owner, or a local name); not an identity."""
        if not self.tenant:
            return self.name
        return f"{self.tenant}/{self.name}" if self.name else self.tenant


ANONYMOUS = Person("", "anonymous")


@dataclass
class Usage:
    """Tokens an answer cost. `reasoning_tokens` are the part of `completion_tokens` spent thinking."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.reasoning_tokens:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out


@dataclass(frozen=True)
class GenerationParams:
    """Sampling and length controls shared by every engine."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    json_schema: dict[str, object] | None = None  # constrain the output to JSON matching this schema


@dataclass(frozen=True)
class Citation:
    """A numbered source an answer used: `id` names the entry in its source (e.g. ICD-10-CM:I21.9).

    `kind` says what it is (`source`, `product`, `post`, …) and `meta` carries what a client shows on its
    card (e.g. `price` and `currency` for a product, `author` for a shared post)."""

    index: int
    id: str
    title: str
    url: str
    source: str
    kind: str = "source"
    meta: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "index": self.index,
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "source": self.source,
            "kind": self.kind,
        }
        if self.meta:
            out["meta"] = dict(self.meta)
        return out


@dataclass(frozen=True)
class TraceStep:
    """One generation pass of a multi-agent mode: which agent (None: the aggregator), which phase, what it
    wrote, the short answer it committed to (if any), its tokens, and when it ran (seconds from the start)."""

    agent: int | None
    phase: str
    text: str
    answer: str | None
    usage: Usage
    started_s: float
    ended_s: float

    @property
    def seconds(self) -> float:
        return self.ended_s - self.started_s

    def as_dict(self) -> dict[str, object]:
        return {
            "agent": self.agent,
            "phase": self.phase,
            "text": self.text,
            "answer": self.answer,
            "usage": self.usage.as_dict(),
            "started_s": round(self.started_s, 3),
            "ended_s": round(self.ended_s, 3),
        }


@dataclass(frozen=True)
class Route:
    """Which way `ember-auto` sent a request (`target`: a mode, `calculator` or `planner`) and why."""

    target: str
    reason: str
    effort: ReasoningEffort | None = None
    signals: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"target": self.target, "reason": self.reason, "signals": dict(self.signals)}
        if self.effort:
            out["effort"] = self.effort
        return out


@dataclass
class Delta:
    """A piece of a streamed answer. The last delta of a stream carries `finish_reason` and `usage`, and
    the citations, the agent trace and the route (`ember-auto`) of the whole answer, if any."""

    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    citations: tuple[Citation, ...] = ()
    trace: tuple[TraceStep, ...] = ()
    route: Route | None = None


@dataclass
class Answer:
    """A stream of deltas folded into one answer: its text, its reasoning, why it ended, what it cost, the
    extensions its last deltas carry (citations, trace, route) and how many deltas carried text (`pieces`).
    The one place a stream is folded: the server, the pipeline, the meter and the agents all use it."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    citations: tuple[Citation, ...] = ()
    trace: tuple[TraceStep, ...] = ()
    route: Route | None = None
    pieces: int = 0

    def add(self, delta: Delta) -> Delta:
        """Fold `delta` in (a later usage, finish or extension replaces an earlier one); returns it."""
        self.content.append(delta.content)
        self.reasoning.append(delta.reasoning)
        self.pieces += bool(delta.content or delta.reasoning)
        self.finish_reason = delta.finish_reason or self.finish_reason
        self.usage = delta.usage or self.usage
        self.citations = delta.citations or self.citations
        self.trace = delta.trace or self.trace
        self.route = delta.route or self.route
        return delta

    @property
    def text(self) -> str:
        return "".join(self.content)

    @property
    def thought(self) -> str:
        return "".join(self.reasoning)

    @classmethod
    async def of(cls, deltas: AsyncIterable[Delta]) -> Answer:
        """The whole of `deltas`, read to the end."""
        answer = cls()
        async for delta in deltas:
            answer.add(delta)
        return answer


def last_user_text(messages: list[Message]) -> str:
    """The content of the last user message ('' if there is none)."""
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


@dataclass(frozen=True)
class Capabilities:
    """What an engine can take in and give out."""

    text: bool = True
    image: bool = False
    audio: bool = False
    reasoning: bool = False
    context_tokens: int | None = None
    parallel: int = 1
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class ChatRequest:
    """A validated chat request as the pipeline sees it: the mode, the turns, the knobs, the owner."""

    model: str
    messages: list[Message]
    params: GenerationParams = field(default_factory=GenerationParams)
    user: Person = ANONYMOUS
    conversation_id: str | None = None
    opened: bool = False  # the pipeline checked the conversation and put its stored turns first
    reasoning_effort: ReasoningEffort | None = None  # for modes that think; None: the mode's default
    include_trace: bool = False  # multi-agent modes: return each agent's passes on the last delta
    scopes: frozenset[str] | None = None  # the caller's key scopes (None: all); ember-auto routes within them
    crisis_shown: bool = False  # the pipeline already showed crisis resources (a triaging mode need not repeat them)


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    """What a speech engine heard: the text, its language, the audio's duration and timed segments."""

    text: str
    language: str
    duration: float
    segments: tuple[Segment, ...] = ()


@dataclass(frozen=True)
class TranscribeOptions:
    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
