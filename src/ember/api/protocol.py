"""OpenAI wire format: lenient request models (unknown fields accepted and logged), exact responses.

Types are strict (a string where a number belongs is a 400, not a coercion; a whole number such as
`5.0` is an integer, as JSON has it). Messages become intake's `Turn`s (`turns_of`): intake checks the
images and hears the audio. This module converts between the wire and Ember's types; it does no I/O.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ember.api.log_safety import field_names
from ember.api.wire import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    ChunkDelta,
    CitationOut,
    ErrorDetail,
    ErrorResponse,
    RouteOut,
    TraceStepOut,
    usage_out,
)
from ember.errors import InvalidRequest
from ember.intake.chat import ImageRef, Part, Spoken, Turn
from ember.types import ChatRequest, Delta, GenerationParams, Person, ReasoningEffort, Role, Usage

MAX_STOP_SEQUENCES = 4
MAX_TOKENS_CAP = 2**20  # more than any context Ember runs; keeps absurd values away from C engines
CONVERSATION_ID = r"^[A-Za-z0-9_.:-]+$"
SAFE_INT = 2**53  # the integers every JSON reader holds exactly (I-JSON, RFC 7493)


def _whole(value: Any) -> Any:
    """JSON has one number type: `5.0` is the integer 5 (JSON Schema agrees); `5.5` and `"5"` stay wrong."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


TokenCount = Annotated[int, Field(ge=1, le=MAX_TOKENS_CAP), BeforeValidator(_whole)]
Seed = Annotated[int, Field(ge=-SAFE_INT, le=SAFE_INT), BeforeValidator(_whole)]
OneChoice = Annotated[int, Field(ge=1, le=1), BeforeValidator(_whole)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    def extra_field_names(self) -> str:
        """The names of the fields sent that this model does not know, escaped and capped for a log line."""
        return field_names(self.model_extra or {})


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class ImageURL(_Lenient):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImageURLPart(_Lenient):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(_Lenient):
    data: str
    format: str


class InputAudioPart(_Lenient):
    type: Literal["input_audio"]
    input_audio: InputAudio


ContentPart = Annotated[TextPart | ImageURLPart | InputAudioPart, Field(discriminator="type")]


class ChatMessageIn(_Lenient):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(_Lenient):
    include_usage: bool = False


class ChatCompletionRequest(_Lenient):
    model: str
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: TokenCount | None = None
    max_completion_tokens: TokenCount | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: Seed | None = None
    n: OneChoice | None = Field(default=None, description="only one choice is generated")
    user: str | None = Field(default=None, min_length=1, max_length=256)
    conversation_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=CONVERSATION_ID,  # it comes back in a response header: ASCII letters, digits and _ . : - only
        description="Ember extension: continue a stored conversation",
    )
    reasoning_effort: ReasoningEffort | None = Field(
        default=None, description="thinking budget of the reasoning modes (ember-thinking, ember-contemplating)"
    )
    include_trace: bool = Field(
        default=False, description="Ember extension: return a multi-agent mode's per-agent passes as `trace`"
    )


def _part(part: TextPart | ImageURLPart | InputAudioPart) -> Part:
    if isinstance(part, TextPart):
        return part.text
    if isinstance(part, ImageURLPart):
        return ImageRef(part.image_url.url)
    return Spoken(part.input_audio.data, part.input_audio.format)


def turns_of(body: ChatCompletionRequest) -> list[Turn]:
    """The messages as intake reads them (`developer` is `system`); their audio is not heard yet."""
    turns = []
    for message in body.messages:
        role: Role = "system" if message.role == "developer" else message.role
        content = message.content
        parts = tuple(_part(p) for p in content) if isinstance(content, list) else (content,) if content else ()
        turns.append(Turn(role, parts))
    return turns


def to_chat_request(body: ChatCompletionRequest, user: Person) -> ChatRequest:
    """The request as modes read it, but for its messages, which intake makes from `turns_of(body)`; `user`
    is the stored identity the caller's principal gives `body.user`."""
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stop) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed", param="stop")
    if body.messages[-1].role == "assistant":
        raise InvalidRequest("the last message must not be from the assistant", param="messages")
    params = GenerationParams(
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=tuple(stop),
        seed=body.seed,
    )
    return ChatRequest(
        model=body.model,
        messages=[],
        params=params,
        user=user,
        conversation_id=body.conversation_id,
        reasoning_effort=body.reasoning_effort,
        include_trace=body.include_trace,
    )


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def completion_json(
    cid: str, model: str, content: str, reasoning: str, finish: str | None, usage: Usage, extra: dict[str, Any]
) -> dict[str, Any]:
    """A `chat.completion` body; `extra` holds Ember's top-level extension fields (e.g. `input_transcripts`)."""
    message = AssistantMessage(role="assistant", content=content, reasoning_content=reasoning or None)
    choice = Choice(index=0, message=message, finish_reason=finish or "stop")
    created = int(time.time())
    return ChatCompletion(
        id=cid, created=created, model=model, choices=[choice], usage=usage_out(usage), **extra
    ).wire()


def chunk_json(
    cid: str,
    model: str,
    created: int,
    delta: Delta | None,
    *,
    role: bool = False,
    extra: dict[str, Any] | None = None,
    usage: Usage | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk` body; `delta=None` makes the final chunk without choices (with `usage` when
    given); `extra` adds extension fields, and a delta's citations, agent trace and route (Ember extensions)
    ride on its chunk as top-level `citations`, `trace` and `route`."""
    head: dict[str, Any] = {"id": cid, "created": created, "model": model, **(extra or {})}
    if delta is None:
        return ChatCompletionChunk(**head, choices=[], usage=usage_out(usage) if usage else None).wire()
    part = ChunkDelta(
        role="assistant" if role else None,
        content=delta.content or ("" if role else None),
        reasoning_content=delta.reasoning or None,
    )
    return ChatCompletionChunk(
        **head,
        choices=[ChunkChoice(index=0, delta=part, finish_reason=delta.finish_reason)],
        citations=[CitationOut.of(c) for c in delta.citations] or None,
        trace=[TraceStepOut.of(step) for step in delta.trace] or None,
        route=RouteOut.of(delta.route) if delta.route is not None else None,
    ).wire()


def error_json(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return ErrorResponse(error=ErrorDetail(message=message, type=type_, param=param, code=code)).wire()
