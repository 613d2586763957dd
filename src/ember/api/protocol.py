"""OpenAI wire format: lenient request models (unknown fields accepted and logged), exact responses.

Types are strict (a string where a number belongs is a 400, not a coercion; a whole number such as
`5.0` is an integer, as JSON has it). Messages become intake's `Turn`s (`turns_of`): intake checks the
images and hears the audio. An embeddings request's `input` becomes a list of texts (`texts_of`), and
vectors become its answer (`embeddings_json`). This module converts between the wire and Ember's types;
it does no I/O.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Annotated, Any, Literal

import jsonschema
import numpy as np
import numpy.typing as npt
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
    EmbeddingList,
    EmbeddingOut,
    EmbeddingUsage,
    ErrorDetail,
    ErrorResponse,
    FunctionCallOut,
    FunctionPieceOut,
    MemoryProposalOut,
    RouteOut,
    ToolCallOut,
    ToolCallPieceOut,
    TraceStepOut,
    usage_out,
)
from ember.engines.base import Embeddings
from ember.errors import InvalidRequest
from ember.intake.chat import ImageRef, Part, Spoken, Turn
from ember.types import (
    Answer,
    ChatRequest,
    Delta,
    GenerationParams,
    Person,
    ReasoningEffort,
    Role,
    Tool,
    ToolCall,
    ToolChoice,
    Usage,
)

MAX_STOP_SEQUENCES = 4
MAX_TOOLS = 128  # OpenAI's own cap
FUNCTION_NAME = r"^[A-Za-z0-9_-]+$"  # OpenAI's rule for function names
MAX_TOKENS_CAP = 2**20  # more than any context Ember runs; keeps absurd values away from C engines
CONVERSATION_ID = r"^[A-Za-z0-9_.:-]+$"
SAFE_INT = 2**53  # the integers every JSON reader holds exactly (I-JSON, RFC 7493)
MAX_DIMENSIONS = 2**16  # more than any embedding model's vectors


def _whole(value: Any) -> Any:
    """JSON has one number type: `5.0` is the integer 5 (JSON Schema agrees); `5.5` and `"5"` stay wrong."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


TokenCount = Annotated[int, Field(ge=1, le=MAX_TOKENS_CAP), BeforeValidator(_whole)]
Seed = Annotated[int, Field(ge=-SAFE_INT, le=SAFE_INT), BeforeValidator(_whole)]
OneChoice = Annotated[int, Field(ge=1, le=1), BeforeValidator(_whole)]
TurnNumber = Annotated[int, Field(ge=0, le=SAFE_INT), BeforeValidator(_whole)]  # a stored turn's `seq`
Dimensions = Annotated[int, Field(ge=1, le=MAX_DIMENSIONS), BeforeValidator(_whole)]
Encoding = Literal["float", "base64"]


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


class FunctionCallIn(_Lenient):
    name: str
    arguments: str


class ToolCallIn(_Lenient):
    id: str = Field(min_length=1, max_length=64)
    type: Literal["function"]
    function: FunctionCallIn


class ChatMessageIn(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None  # an assistant's earlier calls
    tool_call_id: str | None = Field(default=None, min_length=1, max_length=64)  # the call a tool message answers


class FunctionIn(_Lenient):
    name: str = Field(min_length=1, max_length=64, pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolIn(_Lenient):
    type: Literal["function"]
    function: FunctionIn


class NamedFunction(_Lenient):
    name: str


class NamedToolChoice(_Lenient):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(_Lenient):
    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Lenient):
    include_usage: bool = False


class ChatCompletionRequest(_Lenient):
    model: str
    messages: list[ChatMessageIn] = Field(description="the turns to answer; may be empty only with `replace`")
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
    replace: TurnNumber | None = Field(
        default=None,
        description="Ember extension, with `conversation_id`: the stored turn (its `seq`) that `messages` go "
        "beside, as a new branch that becomes the active one (the old branch is kept); the model sees the turns "
        "before it. Edit a message: its seq and the new message; regenerate an answer: its seq and no messages",
    )
    reasoning_effort: ReasoningEffort | None = Field(
        default=None, description="thinking budget of the reasoning modes (ember-thinking, ember-contemplating)"
    )
    include_trace: bool = Field(
        default=False, description="Ember extension: return a multi-agent mode's per-agent passes as `trace`"
    )
    tools: list[ToolIn] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None


class EmbeddingRequest(_Lenient):
    model: str
    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="a text or a list of texts; token ids are refused (the model's tokenizer is not OpenAI's)"
    )
    encoding_format: Encoding | None = Field(default=None, description="`float` (the default) or `base64`")
    dimensions: Dimensions | None = Field(default=None, description="accepted only when it is the model's own size")
    user: str | None = Field(default=None, min_length=1, max_length=256, description="accepted; nothing is kept")


def texts_of(body: EmbeddingRequest) -> list[str]:
    """The request's texts; InvalidRequest for token ids (a list of integers, or of lists of them)."""
    given = body.input if isinstance(body.input, list) else [body.input]
    texts = [text for text in given if isinstance(text, str)]
    if len(texts) != len(given):
        raise InvalidRequest(
            "'input' as token ids is not supported: send text (a string or a list of strings), as the embedding "
            "model reads it with its own tokenizer",
            param="input",
        )
    return texts


def _encoded(vector: npt.NDArray[np.float32], encoding: Encoding) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    values: list[float] = vector.tolist()
    return values


def embeddings_json(model: str, embeddings: Embeddings, encoding: Encoding) -> dict[str, Any]:
    """A `list` of embeddings body: each vector as floats, or as OpenAI's base64 of little-endian float32."""
    data = [EmbeddingOut(index=n, embedding=_encoded(row, encoding)) for n, row in enumerate(embeddings.vectors)]
    usage = EmbeddingUsage(prompt_tokens=embeddings.tokens, total_tokens=embeddings.tokens)
    return EmbeddingList(data=data, model=model, usage=usage).wire()


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
        calls = tuple(ToolCall(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ())
        turns.append(Turn(role, parts, calls, message.tool_call_id))
    return turns


def to_chat_request(body: ChatCompletionRequest, user: Person) -> ChatRequest:
    """The request as modes read it, but for its messages, which intake makes from `turns_of(body)`; `user`
    is the stored identity the caller's principal gives `body.user`."""
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stop) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed", param="stop")
    if body.replace is not None and body.conversation_id is None:
        raise InvalidRequest(
            "'replace' names a turn of a stored conversation: send its conversation_id", param="replace"
        )
    if not body.messages and body.replace is None:
        raise InvalidRequest("'messages' must hold at least one message", param="messages")
    if body.messages and body.messages[-1].role == "assistant":
        raise InvalidRequest("the last message must not be from the assistant", param="messages")
    check_tool_messages(body.messages)
    params = GenerationParams(
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=tuple(stop),
        seed=body.seed,
        json_schema=json_schema_of(body.response_format),
        **tools_of(body),
    )
    return ChatRequest(
        model=body.model,
        messages=[],
        params=params,
        user=user,
        conversation_id=body.conversation_id,
        replace=body.replace,
        reasoning_effort=body.reasoning_effort,
        include_trace=body.include_trace,
    )


def checked_schema(schema: dict[str, Any], param: str) -> dict[str, Any]:
    """`schema` if it is a valid JSON Schema (by the draft it names, 2020-12 if none), else InvalidRequest."""
    try:
        jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidRequest(f"{param} is not a valid JSON Schema: {exc.message}", param=param) from exc
    return schema


def tool_of(function: FunctionIn, param: str) -> Tool:
    """A function as Ember offers it: its parameters checked as JSON Schema (none: no arguments)."""
    parameters = checked_schema(function.parameters or {"type": "object", "properties": {}}, f"{param}.parameters")
    return Tool(function.name, function.description or "", parameters)


def tools_of(body: ChatCompletionRequest) -> dict[str, Any]:
    """The request's `tools`, `tool_choice` and `parallel_tool_calls` as GenerationParams fields."""
    tools = tuple(tool_of(t.function, f"tools.{i}.function") for i, t in enumerate(body.tools or ()))
    return {**tools_and_choice(tools, body.tool_choice), "parallel_tool_calls": body.parallel_tool_calls is not False}


def tools_and_choice(
    tools: tuple[Tool, ...], choice: Literal["auto", "none", "required"] | NamedToolChoice | None
) -> dict[str, Any]:
    """`tools` and the `choice` among them, checked: unique names, and a named choice that is offered."""
    names = [t.name for t in tools]
    if len(set(names)) < len(names):
        raise InvalidRequest("tools must have distinct function names", param="tools")
    if choice is not None and not tools:
        raise InvalidRequest("tool_choice is only allowed when tools are given", param="tool_choice")
    if isinstance(choice, NamedToolChoice):
        if choice.function.name not in names:
            raise InvalidRequest("tool_choice names a function that is not in tools", param="tool_choice")
        return {"tools": tools, "tool_choice": ToolChoice("required", choice.function.name)}
    return {"tools": tools, "tool_choice": ToolChoice(choice or "auto")}


def check_tool_messages(messages: list[ChatMessageIn]) -> None:
    """Every `tool` message answers a call an earlier assistant message made; only assistants make calls."""
    called: set[str] = set()
    for i, message in enumerate(messages):
        if message.tool_calls and message.role != "assistant":
            raise InvalidRequest("only assistant messages carry tool_calls", param=f"messages.{i}.tool_calls")
        called |= {c.id for c in message.tool_calls or ()}
        if message.role == "tool" and message.tool_call_id not in called:
            raise InvalidRequest(
                "a tool message must answer a tool call of an earlier assistant message (tool_call_id)",
                param=f"messages.{i}.tool_call_id",
            )


def json_schema_of(response_format: ResponseFormat | None) -> dict[str, Any] | None:
    """The JSON Schema a `response_format` asks the answer to follow (json_object: any object; text: none)."""
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return {"type": "object"}
    if response_format.json_schema is None or response_format.json_schema.schema_ is None:
        raise InvalidRequest("response_format json_schema needs json_schema.schema", param="response_format")
    return checked_schema(response_format.json_schema.schema_, "response_format.json_schema.schema")


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def extensions(answer: Answer) -> dict[str, Any]:
    """Ember's extension fields of a whole answer (`citations`, `trace`, `route`, `memory_proposal`), those it has."""
    fields = {
        "citations": [c.as_dict() for c in answer.citations],
        "trace": [step.as_dict() for step in answer.trace],
        "route": answer.route.as_dict() if answer.route is not None else None,
        "memory_proposal": answer.memory_proposal.as_dict() if answer.memory_proposal is not None else None,
    }
    return {name: value for name, value in fields.items() if value}


def completion_json(cid: str, model: str, answer: Answer, extra: dict[str, Any]) -> dict[str, Any]:
    """A `chat.completion` body; `extra` holds Ember's top-level extension fields (e.g. `input_transcripts`)."""
    calls = [
        ToolCallOut(id=c.id, function=FunctionCallOut(name=c.name, arguments=c.arguments)) for c in answer.tool_calls
    ]
    message = AssistantMessage(
        role="assistant",
        content=answer.text if answer.text or not calls else None,
        reasoning_content=answer.thought or None,
        tool_calls=calls or None,
    )
    choice = Choice(index=0, message=message, finish_reason=answer.finish_reason or "stop")
    usage = usage_out(answer.usage or Usage())
    return ChatCompletion(id=cid, created=int(time.time()), model=model, choices=[choice], usage=usage, **extra).wire()


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
    given); `extra` adds extension fields, and a delta's citations, agent trace, route and memory proposal (Ember
    extensions) ride on its chunk as top-level `citations`, `trace`, `route` and `memory_proposal`."""
    head: dict[str, Any] = {"id": cid, "created": created, "model": model, **(extra or {})}
    if delta is None:
        return ChatCompletionChunk(**head, choices=[], usage=usage_out(usage) if usage else None).wire()
    pieces = [
        ToolCallPieceOut(
            index=p.index,
            id=p.id,
            type="function" if p.id else None,
            function=FunctionPieceOut(name=p.name, arguments=p.arguments),
        )
        for p in delta.tool_calls
    ]
    part = ChunkDelta(
        role="assistant" if role else None,
        content=delta.content or ("" if role else None),
        reasoning_content=delta.reasoning or None,
        tool_calls=pieces or None,
    )
    return ChatCompletionChunk(
        **head,
        choices=[ChunkChoice(index=0, delta=part, finish_reason=delta.finish_reason)],
        citations=[CitationOut.of(c) for c in delta.citations] or None,
        trace=[TraceStepOut.of(step) for step in delta.trace] or None,
        route=RouteOut.of(delta.route) if delta.route is not None else None,
        memory_proposal=MemoryProposalOut.of(delta.memory_proposal) if delta.memory_proposal is not None else None,
    ).wire()


def error_json(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return ErrorResponse(error=ErrorDetail(message=message, type=type_, param=param, code=code)).wire()
