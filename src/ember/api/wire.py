"""The bodies Ember answers with, as pydantic models: `/openapi.json` is derived from them, never written twice.

Strict out: no unknown fields, and a field is either always sent (`null` included, as OpenAI's `logprobs`) or,
declared `Omitted`, left out of the body when it has no value (`reasoning_content`, the extension fields
`input_transcripts`, `citations`, `trace`, `route`). Fields are declared in the order they go on the wire.
Numbers that arrive as whole numbers stay integers (`Number`), so a body reads as it did when built by hand.
Request models live in `ember.api.protocol`, which builds and dumps these.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from ember.types import Citation, Route, TraceStep, Usage


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


class InputTranscript(Wire):
    """Ember extension: what was heard in an `input_audio` part."""

    message: int
    part: int
    text: str
    language: str
    duration: Number


class AssistantMessage(Wire):
    role: Literal["assistant"]
    content: str
    reasoning_content: Omitted[str] = None


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


class ChunkDelta(Wire):
    role: Omitted[Literal["assistant"]] = None
    content: Omitted[str] = None
    reasoning_content: Omitted[str] = None


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


# -- models, transcriptions ---------------------------------------------------------------------------------


class ModelCard(Wire):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    description: str


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


# -- conversations and people -------------------------------------------------------------------------------


class Conversation(Wire):
    id: str
    object: Literal["conversation"] = "conversation"
    user: str
    mode: str
    title: str
    created_at: int
    updated_at: int


class StoredMessage(Wire):
    """A stored turn other than the assistant's."""

    role: Literal["system", "user"]
    content: str
    created_at: int
    reasoning_content: Omitted[str] = None


class StoredAnswer(Wire):
    """A stored assistant turn: how it finished (null if unknown) and its tokens."""

    role: Literal["assistant"]
    content: str
    created_at: int
    reasoning_content: Omitted[str] = None
    finish_reason: str | None
    usage: UsageOut


class ConversationDetail(Conversation):
    messages: list[Annotated[StoredMessage | StoredAnswer, Field(discriminator="role")]]


class ConversationList(Wire):
    object: Literal["list"] = "list"
    data: list[Conversation]


class ConsentFlags(Wire):
    history: bool
    personalisation: bool
    health_storage: bool


class PersonOut(Wire):
    object: Literal["person"] = "person"
    id: str
    consent: ConsentFlags


class ApiKeyRow(Wire):
    """An API key as exported: never its hash."""

    id: str
    prefix: str
    owner: str
    scopes: str
    tier: str
    name: str
    created_at: Number
    revoked_at: Number | None


class EventRow(Wire):
    user: str
    item: str
    type: str
    timestamp: Number
    value: Omitted[Number] = None


class Friendship(Wire):
    user: str
    friend: str


class Post(Wire):
    id: str
    object: Literal["post"] = "post"
    author: str
    text: str
    audience: str
    items: list[str]
    created_at: int


class PersonExport(Wire):
    """Everything held about a person; `api_keys` only for a key's owner exporting their whole tenant."""

    object: Literal["person.export"] = "person.export"
    id: str
    exported_at: int
    consent: dict[str, ConsentFlags]
    conversations: list[ConversationDetail]
    api_keys: Omitted[list[ApiKeyRow]] = None
    events: list[EventRow]
    posts: list[Post]
    friendships: list[Friendship]
    named_in_posts: list[str]


class PersonDeleted(Wire):
    object: Literal["person.deleted"] = "person.deleted"
    id: str
    deleted: bool
    removed: dict[str, int]


# -- shopping -------------------------------------------------------------------------------------------------


class RejectedRow(Wire):
    index: int
    message: str


class ImportReport(Wire):
    """A batch's outcome: `object` is `events.import`, `catalog.import`, `posts.import` or `friendships.import`."""

    object: str
    accepted: int
    rejected: list[RejectedRow]


class CatalogItem(Wire):
    id: str
    object: Literal["catalog.item"] = "catalog.item"
    title: str
    description: str
    category: str
    price: Number
    currency: str
    attributes: dict[str, Any]


class Recommendation(Wire):
    rank: int
    item: CatalogItem
    score: Number
    reasons: list[str]


class Recommendations(Wire):
    object: Literal["list"] = "list"
    user: str
    personalised: bool
    data: list[Recommendation]


# -- health ---------------------------------------------------------------------------------------------------


class IndexStatus(Wire):
    """ember-health's knowledge index: ready, or how far a build has got (and why it failed, if it did)."""

    ready: bool
    building: bool
    done: int
    total: int
    error: Omitted[str] = None


class HealthReport(Wire):
    """`/health`: every engine's probe (200 `ok`, or 503 `unavailable`), its age, and the knowledge index."""

    status: Literal["ok", "unavailable"]
    engines: dict[str, dict[str, Any]]
    age_s: Number
    health_index: IndexStatus


class Live(Wire):
    status: Literal["ok"] = "ok"
