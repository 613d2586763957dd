"""The bodies Ember answers with, as pydantic models: `/openapi.json` is derived from them, never written twice.

Strict out: no unknown fields, and a field is either always sent (`null` included, as OpenAI's `logprobs`) or,
declared `Omitted`, left out of the body when it has no value (`reasoning_content`, the extension fields
`input_transcripts`, `citations`, `trace`, `route`, `memory_proposal`). Fields are declared in the order they go
on the wire.
Numbers that arrive as whole numbers stay integers (`Number`), so a body reads as it did when built by hand.
Request models live in `ember.api.protocol`, which builds and dumps these.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from ember.types import Citation, MemoryProposal, Route, TraceStep, Usage


def _none(value: object) -> bool:
    return value is None


T = TypeVar("T")
Omitted = Annotated[T | None, Field(exclude_if=_none)]  # left out of the body when None (never sent as null)
Number = Annotated[int | float, WithJsonSchema({"type": "number"})]  # 3 stays 3, 0.5 stays 0.5


class Wire(BaseModel):
    """A response body (or a part of one)."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    def wire(self) -> dict[str, Any]:
        """The body as it goes on the wire (omitted fields left out)."""
        return self.model_dump()


# -- errors ----------------------------------------------------------------------------------------------


class ErrorDetail(Wire):
    message: str = Field(json_schema_extra={"minLength": 1})  # documented, not checked: an error must go out
    type: str
    param: str | None
    code: str | None


class ErrorResponse(Wire):
    """OpenAI's error envelope: every refusal and failure, and an error event in a stream."""

    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "A refused request"},
    "5XX": {"model": ErrorResponse, "description": "A server or engine failure"},
}  # every router's `responses`; it also keeps FastAPI from documenting a 422 that Ember never sends


# -- chat completions -------------------------------------------------------------------------------------


class CompletionTokensDetails(Wire):
    reasoning_tokens: int = Field(ge=0)


class UsageOut(Wire):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)
    completion_tokens_details: Omitted[CompletionTokensDetails] = None


def usage_out(usage: Usage) -> UsageOut:
    return UsageOut.model_validate(usage.as_dict())


class CitationOut(Wire):
    """Ember extension: a numbered source the answer used."""

    index: int
    id: str
    title: str
    url: str
    source: str
    kind: str
    meta: Omitted[dict[str, Any]] = None

    @classmethod
    def of(cls, citation: Citation) -> CitationOut:
        return cls.model_validate(citation.as_dict())


class TraceStepOut(Wire):
    """Ember extension: one pass of a multi-agent mode (`agent` null: the aggregator)."""

    agent: int | None
    phase: str
    text: str
    answer: str | None
    usage: UsageOut
    started_s: Number
    ended_s: Number

    @classmethod
    def of(cls, step: TraceStep) -> TraceStepOut:
        return cls.model_validate(step.as_dict())


class RouteOut(Wire):
    """Ember extension: where `ember-auto` sent the request, and why."""

    target: str
    reason: str
    signals: dict[str, Any]
    effort: Omitted[str] = None

    @classmethod
    def of(cls, route: Route) -> RouteOut:
        return cls.model_validate(route.as_dict())


class MemoryProposalOut(Wire):
    """Ember extension: a durable fact the person's message stated ("I'm vegetarian"), offered to be remembered
    (with their `memory` consent on). Nothing is kept: `POST /v1/me/memories` with this `text` keeps it."""

    text: str
    kind: Literal["diet", "allergy", "budget", "location", "family", "preference"]

    @classmethod
    def of(cls, proposal: MemoryProposal) -> MemoryProposalOut:
        return cls.model_validate(proposal.as_dict())


class InputTranscript(Wire):
    """Ember extension: what was heard in an `input_audio` part."""

    message: int
    part: int
    text: str
    language: str
    duration: Number


class FunctionCallOut(Wire):
    name: str
    arguments: str  # JSON text


class ToolCallOut(Wire):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallOut


class AssistantMessage(Wire):
    role: Literal["assistant"]
    content: str | None  # null when the answer is only tool calls
    reasoning_content: Omitted[str] = None
    tool_calls: Omitted[list[ToolCallOut]] = None


class Choice(Wire):
    index: int
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(Wire):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: UsageOut
    input_transcripts: Omitted[list[InputTranscript]] = None
    citations: Omitted[list[CitationOut]] = None
    trace: Omitted[list[TraceStepOut]] = None
    route: Omitted[RouteOut] = None
    memory_proposal: Omitted[MemoryProposalOut] = None


class FunctionPieceOut(Wire):
    name: Omitted[str] = None
    arguments: str


class ToolCallPieceOut(Wire):
    """A piece of a streamed tool call: `id`, `type` and the function's `name` come on its first piece."""

    index: int
    id: Omitted[str] = None
    type: Omitted[Literal["function"]] = None
    function: FunctionPieceOut


class ChunkDelta(Wire):
    role: Omitted[Literal["assistant"]] = None
    content: Omitted[str] = None
    reasoning_content: Omitted[str] = None
    tool_calls: Omitted[list[ToolCallPieceOut]] = None


class ChunkChoice(Wire):
    index: int
    delta: ChunkDelta
    finish_reason: str | None
    logprobs: None = None


class ChatCompletionChunk(Wire):
    """One `data:` event of a streamed completion; the usage-only last chunk has no choices."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    input_transcripts: Omitted[list[InputTranscript]] = None
    choices: list[ChunkChoice]
    usage: Omitted[UsageOut] = None
    citations: Omitted[list[CitationOut]] = None
    trace: Omitted[list[TraceStepOut]] = None
    route: Omitted[RouteOut] = None
    memory_proposal: Omitted[MemoryProposalOut] = None


# -- models, transcriptions, embeddings -----------------------------------------------------------------------


class ModelCard(Wire):
    """OpenAI's model object, with two Ember extensions: `description`, and `task`: what the model does (`chat`:
    a mode for `/v1/chat/completions`; `embedding`: a model for `/v1/embeddings`)."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    description: str
    task: Literal["chat", "embedding"]


class ModelList(Wire):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Transcription(Wire):
    """`response_format=json`."""

    text: str


class TranscriptionSegment(Wire):
    id: int
    start: Number
    end: Number
    text: str


class VerboseTranscription(Wire):
    """`response_format=verbose_json`."""

    task: Literal["transcribe"] = "transcribe"
    language: str
    duration: Number
    text: str
    segments: list[TranscriptionSegment]


class EmbeddingOut(Wire):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(
        description="the vector; with `encoding_format: base64`, its little-endian float32 bytes in base64"
    )


class EmbeddingUsage(Wire):
    prompt_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)


class EmbeddingList(Wire):
    """`/v1/embeddings`: one vector per input, in the inputs' order."""

    object: Literal["list"] = "list"
    data: list[EmbeddingOut]
    model: str
    usage: EmbeddingUsage


# -- conversations and people -------------------------------------------------------------------------------


class Conversation(Wire):
    id: str
    object: Literal["conversation"] = "conversation"
    user: str
    mode: str
    title: str
    created_at: int
    updated_at: int


class StoredTurn(Wire):
    """A stored turn's place in its conversation's tree: its number (`seq`, in the order turns were stored),
    the turn it follows (`parent`, null for a first turn) and the turns that follow that same turn, itself
    included (`siblings`: its other versions, from regenerating or editing; oldest first)."""

    seq: int
    parent: int | None
    siblings: list[int]


class StoredImagePart(Wire):
    """An image a stored user turn carried: what the image readers said of it (null if they made nothing) and,
    while it is `stored` (the person's `media_storage` consent, at most `EMBER_MEDIA_MAX_BYTES`), where to
    fetch it; else why it is not (`too_large`, or `media_storage_off`: off when sent, or turned off since)."""

    type: Literal["image"]
    sha256: str = Field(description="of the image's bytes as stored (as intake decoded them)")
    mime: str
    width: int
    height: int
    bytes: int
    stored: bool
    url: Omitted[str] = Field(default=None, description="GET it with the same key and `user` as the conversation")
    not_stored: Omitted[Literal["too_large", "media_storage_off"]] = None
    description: str | None


class StoredAudioPart(Wire):
    """An audio clip a stored user turn carried, as heard (its transcript is also in the turn's content)."""

    type: Literal["audio"]
    transcript: str
    language: str
    duration: Number = Field(description="seconds")


class StoredMessage(StoredTurn):
    """A stored turn other than the assistant's (a `tool` turn names the call it answers; a user turn's images
    and audio clips are its `parts`: images first, then audio, each in the order sent)."""

    role: Literal["system", "user", "tool"]
    content: str
    created_at: int
    reasoning_content: Omitted[str] = None
    tool_call_id: Omitted[str] = None
    image_descriptions: Omitted[list[str]] = None  # a user turn's images, as the image readers described them
    parts: Omitted[list[Annotated[StoredImagePart | StoredAudioPart, Field(discriminator="type")]]] = None


class StoredAnswer(StoredTurn):
    """A stored assistant turn: how it finished (null if unknown) and its tokens."""

    role: Literal["assistant"]
    content: str
    created_at: int
    reasoning_content: Omitted[str] = None
    tool_calls: Omitted[list[ToolCallOut]] = None
    finish_reason: str | None
    usage: UsageOut


class ConversationDetail(Conversation):
    """A conversation with the turns of its active branch (in a person's export: every turn of every branch)."""

    messages: list[Annotated[StoredMessage | StoredAnswer, Field(discriminator="role")]]


class ConversationList(Wire):
    object: Literal["list"] = "list"
    data: list[Conversation]


class ConversationDeleted(Wire):
    id: str
    object: Literal["conversation.deleted"] = "conversation.deleted"
    deleted: Literal[True] = True


class Post(Wire):
    id: str
    object: Literal["post"] = "post"
    author: str
    text: str
    audience: str
    items: list[str]
    created_at: int
