"""Plain data passed between the layers: messages in, deltas out. No behaviour, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    """One chat turn with its text content (content parts are flattened by intake)."""

    role: Role
    content: str


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class GenerationParams:
    """Sampling and length controls shared by every engine."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class Citation:
    """A numbered source an answer used: `id` names the entry in its source (e.g. ICD-10-CM:I21.9)."""

    index: int
    id: str
    title: str
    url: str
    source: str

    def as_dict(self) -> dict[str, object]:
        return {"index": self.index, "id": self.id, "title": self.title, "url": self.url, "source": self.source}


@dataclass
class Delta:
    """A piece of a streamed answer. The last delta of a stream carries `finish_reason` and `usage`, and
    the citations of the whole answer, if any."""

    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    citations: tuple[Citation, ...] = ()


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
    user: str = "anonymous"
    conversation_id: str | None = None


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
