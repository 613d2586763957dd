"""Plain data passed between the layers: messages in, deltas out. No behaviour, no I/O."""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant", "tool"]


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
class ToolCall:
    """A call the model made to one of the offered functions: `arguments` is JSON text, as OpenAI sends it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Tool:
    """A function the caller offers the model: its name, what it does and its JSON-Schema `parameters`."""

    name: str
    description: str = ""
    parameters: dict[str, object] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class ServerCall:
    """A call the model made to one of Ember's own specialists, run by the server: its result (`ok` False: why
    it failed) is already in the conversation, and the caller sees the call as done."""

    id: str
    name: str
    arguments: str
    output: str
    ok: bool = True


@dataclass(frozen=True)
class ToolChoice:
    """Whether the model may (`auto`), must not (`none`) or must (`required`) call a tool; `name`: must call
    that function."""

    kind: Literal["auto", "none", "required"] = "auto"
    name: str | None = None


@dataclass(frozen=True)
class Heard:
    """What one `input_audio` part said: its transcript (also in its message's text), language and seconds."""

    text: str
    language: str
    duration: float


@dataclass(frozen=True)
class Message:
    """One chat turn: its text (text parts are joined by intake), the images it carries, in order, and their
    text descriptions once the image readers made them (for models that cannot see), and what its audio parts
    said (`heard`, in order). An assistant turn may carry the `tool_calls` it made; a `tool` turn answers the
    call `tool_call_id`."""

    role: Role
    content: str
    images: tuple[Image, ...] = ()
    descriptions: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    heard: tuple[Heard, ...] = ()

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
    tools: tuple[Tool, ...] = ()  # functions the model may call
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: bool = True  # more than one call in one answer
    server_tools: frozenset[str] = frozenset()  # the `tools` Ember runs itself (its specialists), by name


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


@dataclass(frozen=True)
class MemoryProposal:
    """A durable fact a person stated about themselves ("I'm vegetarian"), offered to be remembered; nothing is
    kept unless they save it. `kind`: what the rule that found it is about (diet, allergy, budget, location,
    family, preference)."""

    text: str
    kind: str

    def as_dict(self) -> dict[str, str]:
        return {"text": self.text, "kind": self.kind}


@dataclass(frozen=True)
class ToolCallPiece:
    """A piece of a streamed tool call, as OpenAI streams them: the call's `index` in the answer, then its
    `id` and `name` on its first piece, and its `arguments` text in pieces."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass
class Delta:
    """A piece of a streamed answer. The last delta of a stream carries `finish_reason` and `usage`, and
    the citations, the agent trace, the route (`ember-auto`) and a memory proposal of the whole answer, if any."""

    content: str = ""
    reasoning: str = ""
    tool_calls: tuple[ToolCallPiece, ...] = ()
    server_calls: tuple[ServerCall, ...] = ()  # specialists the server ran for this answer, once each was done
    finish_reason: str | None = None
    usage: Usage | None = None
    citations: tuple[Citation, ...] = ()
    trace: tuple[TraceStep, ...] = ()
    route: Route | None = None
    memory_proposal: MemoryProposal | None = None

    @property
    def extends(self) -> bool:
        """Whether it carries one of Ember's extensions (citations, a trace, a route, a memory proposal)."""
        return bool(self.citations or self.trace or self.route or self.memory_proposal)


@dataclass
class Answer:
    """A stream of deltas folded into one answer: its text, its reasoning, why it ended, what it cost, the
    extensions its last deltas carry (citations, trace, route, memory proposal) and how many deltas carried text
    (`pieces`).
    The one place a stream is folded: the server, the pipeline, the meter and the agents all use it."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    citations: tuple[Citation, ...] = ()
    trace: tuple[TraceStep, ...] = ()
    route: Route | None = None
    memory_proposal: MemoryProposal | None = None
    pieces: int = 0
    calls: dict[int, list[str]] = field(default_factory=dict)  # index -> [id, name, arguments so far]
    server_calls: list[ServerCall] = field(default_factory=list)

    def add(self, delta: Delta) -> Delta:
        """Fold `delta` in (a later usage, finish or extension replaces an earlier one); returns it."""
        self.content.append(delta.content)
        self.reasoning.append(delta.reasoning)
        self.pieces += bool(delta.content or delta.reasoning or delta.tool_calls)
        self.server_calls += delta.server_calls
        for piece in delta.tool_calls:
            call = self.calls.setdefault(piece.index, ["", "", ""])
            call[0], call[1] = piece.id or call[0], piece.name or call[1]
            call[2] += piece.arguments
        self.finish_reason = delta.finish_reason or self.finish_reason
        self.usage = delta.usage or self.usage
        self.citations = delta.citations or self.citations
        self.trace = delta.trace or self.trace
        self.route = delta.route or self.route
        self.memory_proposal = delta.memory_proposal or self.memory_proposal
        return delta

    @property
    def text(self) -> str:
        return "".join(self.content)

    @property
    def thought(self) -> str:
        return "".join(self.reasoning)

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The calls the answer made, in index order."""
        return tuple(ToolCall(*self.calls[i]) for i in sorted(self.calls))

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
    tools: bool = False  # it takes `tools` and streams tool calls itself (else Ember's `calling` writes them)
    context_tokens: int | None = None
    parallel: int = 1
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Anchor:
    """Where a request's new turns go in its stored conversation: the first `stored` of its messages are the
    stored turns (one branch, from the first turn), which end at turn `after` (its `seq`; None: no stored turn)."""

    after: int | None = None
    stored: int = 0


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
    memories: tuple[str, ...] = ()  # the person's facts (their memory), for a mode that uses them
    remembered: str | None = None  # what this request asked Ember to remember, once kept
    proposed: MemoryProposal | None = None  # a fact the request stated, offered to be remembered (not kept)
    keep_conversation: bool = True  # store the exchange as a conversation (False: the caller keeps it, as Responses do)
    replace: int | None = None  # the stored turn (its seq) the new turns go beside, as a new branch (None: at the end)
    anchor: Anchor | None = None  # where the new turns go, once the pipeline has opened the conversation


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
