"""The Responses API's wire format (`/v1/responses`): the lenient request (unknown fields accepted and logged,
as chat's), read into a `ResponseSpec`; and the response object, its usage and the input item list built
from Ember's results. Input items are normalised to the shapes OpenAI lists them in (an id each, content
always a list of parts, `developer` kept as a role); `ember.serving.response_items` turns them into turns.
This module converts and checks; it does no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator

from ember import registry
from ember.api.protocol import (
    FUNCTION_NAME,
    FunctionIn,
    NamedFunction,
    NamedToolChoice,
    TokenCount,
    _Lenient,
    checked_schema,
    tool_of,
    tools_and_choice,
)
from ember.api.responses_wire import (
    FunctionTool,
    InputItemList,
    ResponseObject,
    SpecialistTool,
    TextFormatJsonObject,
    TextFormatJsonSchema,
    TextFormatText,
    ToolChoiceFunction,
)
from ember.errors import InvalidRequest, shown
from ember.serving.response_items import new_item_id
from ember.serving.responses import ResponseSpec
from ember.store.responses import Item
from ember.types import ChatRequest, GenerationParams, Person, ReasoningEffort, Tool, Usage

MAX_TOOLS = 128
MAX_METADATA = 16  # keys, as OpenAI allows
TextFormat = TextFormatText | TextFormatJsonObject | TextFormatJsonSchema
ID = Annotated[str, Field(min_length=1, max_length=64)]


# -- the request -----------------------------------------------------------------------------------------


def _text_part(text: str, role: str) -> Item:
    """A text part as a `role` message holds it: `output_text` (with annotations) for the assistant."""
    if role == "assistant":
        return {"type": "output_text", "text": text, "annotations": []}
    return {"type": "input_text", "text": text}


class InputTextIn(_Lenient):
    type: Literal["input_text"]
    text: str

    def item(self, role: str) -> Item:
        return _text_part(self.text, role)


class OutputTextIn(_Lenient):
    type: Literal["output_text"]
    text: str

    def item(self, role: str) -> Item:
        return _text_part(self.text, role)


class InputImageIn(_Lenient):
    type: Literal["input_image"]
    image_url: str = Field(description="a data URI (or an http(s) URL where the server fetches images)")
    detail: Literal["auto", "low", "high"] = "auto"

    def item(self, role: str) -> Item:
        return {"type": "input_image", "image_url": self.image_url, "detail": self.detail}


class AudioIn(_Lenient):
    data: str
    format: str


class InputAudioIn(_Lenient):
    type: Literal["input_audio"]
    input_audio: AudioIn

    def item(self, role: str) -> Item:
        return {
            "type": "input_audio",
            "input_audio": {"data": self.input_audio.data, "format": self.input_audio.format},
        }


PartIn = Annotated[InputTextIn | InputImageIn | InputAudioIn | OutputTextIn, Field(discriminator="type")]
PARTS_FOR: dict[str, frozenset[str]] = {  # the parts a message of each role may hold
    "user": frozenset({"input_text", "input_image", "input_audio"}),
    "system": frozenset({"input_text"}),
    "developer": frozenset({"input_text"}),
    "assistant": frozenset({"input_text", "output_text"}),
}


class MessageIn(_Lenient):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[PartIn]
    id: ID | None = None

    def item(self, i: int) -> Item:
        """As listed: its content always a list of parts (checked against its role), with an id."""
        content = [InputTextIn(type="input_text", text=self.content)] if isinstance(self.content, str) else self.content
        for j, part in enumerate(content):
            if part.type not in PARTS_FOR[self.role]:
                allowed = ", ".join(sorted(PARTS_FOR[self.role]))
                raise InvalidRequest(
                    f"A {self.role} message cannot hold an {part.type!r} part (it may hold {allowed}).",
                    param=f"input.{i}.content.{j}",
                )
        parts = [part.item(self.role) for part in content]
        kept = {"role": self.role, "content": parts, "status": "completed"}
        return {"id": self.id or new_item_id("msg"), "type": "message", **kept}


class FunctionCallIn(_Lenient):
    type: Literal["function_call"]
    call_id: ID
    name: str = Field(min_length=1, max_length=64)
    arguments: str
    id: ID | None = None

    def item(self, i: int) -> Item:
        call = {"call_id": self.call_id, "name": self.name, "arguments": self.arguments, "status": "completed"}
        return {"id": self.id or new_item_id("fc"), "type": "function_call", **call}


class FunctionCallOutputIn(_Lenient):
    type: Literal["function_call_output"]
    call_id: ID
    output: str | list[InputTextIn]
    id: ID | None = None

    def item(self, i: int) -> Item:
        output = self.output if isinstance(self.output, str) else [p.item("user") for p in self.output]
        kept = {"call_id": self.call_id, "output": output, "status": "completed"}
        return {"id": self.id or new_item_id("fco"), "type": "function_call_output", **kept}


class SummaryTextIn(_Lenient):
    type: Literal["summary_text"]
    text: str


class ReasoningItemIn(_Lenient):
    type: Literal["reasoning"]
    summary: list[SummaryTextIn] = Field(default_factory=list)
    id: ID | None = None

    def item(self, i: int) -> Item:
        summary = [{"type": "summary_text", "text": s.text} for s in self.summary]
        return {"id": self.id or new_item_id("rs"), "type": "reasoning", "summary": summary}


def _item_type(value: Any) -> str | None:
    """An item's `type`; a message may leave it out (OpenAI's short form `{"role", "content"}`)."""
    if isinstance(value, dict):
        kind = value.get("type", "message")
        return kind if isinstance(kind, str) else None
    return (
        value.type if isinstance(value, MessageIn | FunctionCallIn | FunctionCallOutputIn | ReasoningItemIn) else None
    )


ItemIn = Annotated[
    Annotated[MessageIn, Tag("message")]
    | Annotated[FunctionCallIn, Tag("function_call")]
    | Annotated[FunctionCallOutputIn, Tag("function_call_output")]
    | Annotated[ReasoningItemIn, Tag("reasoning")],
    Discriminator(
        _item_type,
        custom_error_type="invalid_item",
        custom_error_message="an input item's type must be message, function_call, function_call_output or reasoning",
    ),
]


class FunctionToolIn(FunctionIn):
    """A function as the Responses API offers it: chat's `function` object, flat, with its `type`."""

    type: Literal["function"]

    def shown(self) -> FunctionTool:
        """The tool as the response shows it."""
        return FunctionTool(
            type="function",
            name=self.name,
            description=self.description,
            parameters=self.parameters,
            strict=self.strict,
        )


class SpecialistToolIn(_Lenient):
    """Ember extension: offer one of Ember's specialists (`calculator`, `health`, `shopping`, ...) as a tool
    the server runs itself."""

    type: Literal["specialist"]
    name: str = Field(min_length=1, max_length=64)

    def tool(self, param: str) -> Tool:
        """The specialist as a function the model may call; InvalidRequest if there is none of that name."""
        specialist = registry.specialists.get(self.name)
        if specialist is None or not specialist.available():
            known = ", ".join(s.name for s in registry.specialists if s.available())
            raise InvalidRequest(f"there is no specialist named {shown(self.name)}; known: {known}", param=param)
        return Tool(specialist.name, specialist.description, specialist.input_schema)

    def shown(self) -> SpecialistTool:
        """The tool as the response shows it."""
        return SpecialistTool(type="specialist", name=self.name)


class ToolChoiceFunctionIn(_Lenient):
    type: Literal["function"]
    name: str


class ReasoningIn(_Lenient):
    effort: ReasoningEffort | None = None
    summary: str | None = None


class FormatTextIn(_Lenient):
    type: Literal["text"]

    def output_schema(self) -> dict[str, Any] | None:
        return None

    def shown(self) -> TextFormat:
        return TextFormatText(type="text")


class FormatJsonObjectIn(_Lenient):
    type: Literal["json_object"]

    def output_schema(self) -> dict[str, Any] | None:
        return {"type": "object"}

    def shown(self) -> TextFormat:
        return TextFormatJsonObject(type="json_object")


class FormatJsonSchemaIn(_Lenient):
    model_config = ConfigDict(extra="allow", strict=True, validate_by_name=True, validate_by_alias=True)

    type: Literal["json_schema"]
    name: str = Field(min_length=1, max_length=64, pattern=FUNCTION_NAME)
    json_schema: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None

    def output_schema(self) -> dict[str, Any] | None:
        return checked_schema(self.json_schema, "text.format.schema")

    def shown(self) -> TextFormat:
        return TextFormatJsonSchema(
            type="json_schema",
            name=self.name,
            schema=self.json_schema,
            description=self.description,
            strict=self.strict,
        )


class TextIn(_Lenient):
    format: Annotated[FormatTextIn | FormatJsonObjectIn | FormatJsonSchemaIn, Field(discriminator="type")] = Field(
        default_factory=lambda: FormatTextIn(type="text")
    )


Metadata = Annotated[
    dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]], Field(max_length=MAX_METADATA)
]


class ResponseCreateRequest(_Lenient):
    model: str
    input: str | list[ItemIn]
    instructions: str | None = None
    stream: bool | None = False
    previous_response_id: ID | None = None
    store: bool | None = True
    tools: list[Annotated[FunctionToolIn | SpecialistToolIn, Field(discriminator="type")]] | None = Field(
        default=None, max_length=MAX_TOOLS
    )
    tool_choice: Literal["auto", "none", "required"] | ToolChoiceFunctionIn | None = None
    parallel_tool_calls: bool | None = None
    reasoning: ReasoningIn | None = None
    max_output_tokens: TokenCount | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    text: TextIn | None = None
    user: str | None = Field(default=None, min_length=1, max_length=256)
    metadata: Metadata | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[Any]) -> str | list[Any]:
        if not value:
            raise ValueError("the input is empty: send a string or at least one item")
        return value


# -- request → ResponseSpec --------------------------------------------------------------------------------


def input_items(body: ResponseCreateRequest) -> list[Item]:
    """The request's input as items in OpenAI's listed shape (a string is one user message)."""
    if isinstance(body.input, str):
        return [MessageIn(role="user", content=body.input).item(0)]
    return [item.item(i) for i, item in enumerate(body.input)]


def _tools(body: ResponseCreateRequest) -> dict[str, Any]:
    """The request's `tools`, `tool_choice` and `parallel_tool_calls` as GenerationParams fields, checked as
    chat checks them (schemas, distinct names, a named choice that is offered)."""
    tools = tuple(
        tool.tool(f"tools.{i}.name") if isinstance(tool, SpecialistToolIn) else tool_of(tool, f"tools.{i}")
        for i, tool in enumerate(body.tools or ())
    )
    ours = frozenset(t.name for t in body.tools or () if isinstance(t, SpecialistToolIn))
    choice: Literal["auto", "none", "required"] | NamedToolChoice | None
    if isinstance(body.tool_choice, ToolChoiceFunctionIn):  # chat's named choice is nested, this one flat
        choice = NamedToolChoice(type="function", function=NamedFunction(name=body.tool_choice.name))
    else:
        choice = body.tool_choice
    return {
        **tools_and_choice(tools, choice),
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "server_tools": ours,
    }


def _settings(body: ResponseCreateRequest) -> dict[str, Any]:
    """What a response shows of the request that made it (and what is stored to show it again)."""
    choice = body.tool_choice
    tools = [
        SpecialistTool(type="specialist", name=t.name)
        if isinstance(t, SpecialistToolIn)
        else FunctionTool(
            type="function", name=t.name, description=t.description, parameters=t.parameters, strict=t.strict
        )
        for t in body.tools or []
    ]
    reasoning = body.reasoning or ReasoningIn()
    return {
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "metadata": body.metadata or {},
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "reasoning": {"effort": reasoning.effort, "summary": reasoning.summary},
        "temperature": body.temperature,
        "text": {"format": (body.text or TextIn()).format.shown().wire()},
        "tool_choice": ToolChoiceFunction(type="function", name=choice.name).wire()
        if isinstance(choice, ToolChoiceFunctionIn)
        else choice or "auto",
        "tools": [t.wire() for t in tools],
        "top_p": body.top_p,
        "user": body.user,
    }


def to_spec(body: ResponseCreateRequest, user: Person) -> ResponseSpec:
    """The request in Ember's terms; `user` is the stored identity the caller's principal gives `body.user`."""
    params = GenerationParams(
        max_tokens=body.max_output_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        json_schema=(body.text or TextIn()).format.output_schema(),
        **_tools(body),
    )
    effort = body.reasoning.effort if body.reasoning is not None else None
    request = ChatRequest(model=body.model, messages=[], params=params, user=user, reasoning_effort=effort)
    return ResponseSpec(
        request=request,
        input=input_items(body),
        instructions=body.instructions,
        previous_id=body.previous_response_id,
        store=body.store is not False,
        settings=_settings(body),
    )


# -- results → the wire --------------------------------------------------------------------------------------


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},  # not known: none reported
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def response_object(
    *,
    response_id: str,
    created_at: float,
    model: str,
    status: str,
    output: list[Item],
    usage: Usage | None,
    previous_id: str | None,
    settings: dict[str, Any],
    store: bool,
    error: dict[str, str] | None = None,
) -> ResponseObject:
    """A response object: `status` `incomplete` says the answer stopped at `max_output_tokens`."""
    return ResponseObject.model_validate(
        {
            "id": response_id,
            "created_at": int(created_at),
            "status": status,
            "error": error,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "model": model,
            "output": output,
            "previous_response_id": previous_id,
            "store": store,
            "truncation": "disabled",
            "usage": usage_json(usage) if usage is not None else None,
            **settings,
        }
    )


def input_item_list(items: list[Item], limit: int, order: Literal["asc", "desc"], after: str | None) -> InputItemList:
    """A page of `items` (oldest first as stored) in `order`, starting after the item `after` (if given)."""
    ordered = items if order == "asc" else items[::-1]
    ids = [item["id"] for item in ordered]
    if after is not None:
        if after not in ids:
            raise InvalidRequest(f"No input item with id {shown(after)} in this response.", param="after")
        ordered = ordered[ids.index(after) + 1 :]
    page = ordered[:limit]
    return InputItemList.model_validate(
        {
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(ordered) > limit,
        }
    )
