"""The bodies the Responses API answers with (`/v1/responses`), as OpenAI's client types them: the response
object, its output items, the input items of `GET /v1/responses/{id}/input_items`, the deletion receipt and
every stream event. Strict out, as `ember.api.wire` (whose `Wire` base they share); request models live in
`ember.api.responses_protocol`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from ember.api.wire import Number, Omitted, Wire

ItemStatus = Literal["in_progress", "completed", "incomplete"]
Status = Literal["in_progress", "completed", "incomplete", "failed"]


# -- output items ------------------------------------------------------------------------------------------


class UrlCitation(Wire):
    """A source the text cites: `start_index`/`end_index` hold its `[n]` marker in the text."""

    type: Literal["url_citation"]
    start_index: int
    end_index: int
    url: str
    title: str


class OutputText(Wire):
    type: Literal["output_text"]
    text: str
    annotations: list[UrlCitation]


class OutputMessage(Wire):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    status: ItemStatus
    content: list[OutputText]


class SummaryText(Wire):
    type: Literal["summary_text"]
    text: str


class ReasoningItem(Wire):
    """The model's reasoning, its whole text as one summary part."""

    id: str
    type: Literal["reasoning"]
    summary: list[SummaryText]
    status: Omitted[ItemStatus] = None


class FunctionCall(Wire):
    id: str
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    status: ItemStatus


class SpecialistCall(Wire):
    """Ember extension: a call to one of Ember's specialists (offered as a `specialist` tool), run by the
    server; `output` is what it returned (or why it failed, with `status` `failed`)."""

    id: str
    type: Literal["specialist_call"]
    call_id: str
    name: str
    arguments: str
    output: str
    status: Literal["completed", "failed"]


OutputItem = Annotated[OutputMessage | ReasoningItem | FunctionCall | SpecialistCall, Field(discriminator="type")]


# -- input items (as stored and listed) --------------------------------------------------------------------


class InputText(Wire):
    type: Literal["input_text"]
    text: str


class InputImage(Wire):
    type: Literal["input_image"]
    image_url: str
    detail: Literal["auto", "low", "high"]


class InputMessage(Wire):
    """A message of the user, the system or the developer (an assistant's is an `OutputMessage`)."""

    id: str
    type: Literal["message"]
    role: Literal["user", "system", "developer"]
    status: ItemStatus
    content: list[Annotated[InputText | InputImage, Field(discriminator="type")]]


class FunctionCallOutput(Wire):
    id: str
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[InputText]
    status: ItemStatus


InputItem = InputMessage | OutputMessage | FunctionCall | FunctionCallOutput | ReasoningItem


class InputItemList(Wire):
    object: Literal["list"] = "list"
    data: list[InputItem]
    first_id: str | None
    last_id: str | None
    has_more: bool


# -- the response --------------------------------------------------------------------------------------------


class FunctionTool(Wire):
    type: Literal["function"]
    name: str
    description: str | None
    parameters: dict[str, Any] | None
    strict: bool | None


class SpecialistTool(Wire):
    """Ember extension: one of Ember's specialists, which the server runs when the model calls it."""

    type: Literal["specialist"]
    name: str


class ToolChoiceFunction(Wire):
    type: Literal["function"]
    name: str


class TextFormatText(Wire):
    type: Literal["text"]


class TextFormatJsonObject(Wire):
    type: Literal["json_object"]


class TextFormatJsonSchema(Wire):
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True, validate_by_alias=True)

    type: Literal["json_schema"]
    name: str
    json_schema: dict[str, Any] = Field(alias="schema")  # `schema` would shadow BaseModel.schema
    description: Omitted[str] = None
    strict: bool | None


class TextConfig(Wire):
    format: Annotated[TextFormatText | TextFormatJsonObject | TextFormatJsonSchema, Field(discriminator="type")]


class ReasoningConfig(Wire):
    effort: Literal["low", "medium", "high"] | None
    summary: str | None


class InputTokensDetails(Wire):
    cached_tokens: int = Field(ge=0)
    cache_write_tokens: int = Field(ge=0)


class OutputTokensDetails(Wire):
    reasoning_tokens: int = Field(ge=0)


class ResponseUsage(Wire):
    input_tokens: int = Field(ge=0)
    input_tokens_details: InputTokensDetails
    output_tokens: int = Field(ge=0)
    output_tokens_details: OutputTokensDetails
    total_tokens: int = Field(ge=0)


class ResponseError(Wire):
    code: str
    message: str


class IncompleteDetails(Wire):
    reason: Literal["max_output_tokens"]


class ResponseObject(Wire):
    """A model response: its output items and the settings it was made with (`usage` null until it is done)."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Status
    error: ResponseError | None
    incomplete_details: IncompleteDetails | None
    instructions: str | None
    max_output_tokens: int | None
    model: str
    output: list[OutputItem]
    parallel_tool_calls: bool
    previous_response_id: str | None
    reasoning: ReasoningConfig
    store: bool
    temperature: Number | None
    text: TextConfig
    tool_choice: Literal["auto", "none", "required"] | ToolChoiceFunction
    tools: list[Annotated[FunctionTool | SpecialistTool, Field(discriminator="type")]]
    top_p: Number | None
    truncation: Literal["disabled"]
    usage: ResponseUsage | None
    user: str | None
    metadata: dict[str, str]


class ResponseDeleted(Wire):
    id: str
    object: Literal["response.deleted"] = "response.deleted"
    deleted: bool


# -- stream events -----------------------------------------------------------------------------------------


class _Event(Wire):
    type: str  # each event narrows it to its own (declared here, it comes first on the wire)
    sequence_number: int = Field(ge=0)


class _Lifecycle(_Event):
    response: ResponseObject


class ResponseCreated(_Lifecycle):
    type: Literal["response.created"]


class ResponseInProgress(_Lifecycle):
    type: Literal["response.in_progress"]


class ResponseCompleted(_Lifecycle):
    type: Literal["response.completed"]


class ResponseIncomplete(_Lifecycle):
    type: Literal["response.incomplete"]


class ResponseFailed(_Lifecycle):
    type: Literal["response.failed"]


class _ItemEvent(_Event):
    output_index: int
    item: OutputItem


class OutputItemAdded(_ItemEvent):
    type: Literal["response.output_item.added"]


class OutputItemDone(_ItemEvent):
    type: Literal["response.output_item.done"]


class _InItem(_Event):
    item_id: str
    output_index: int


class ContentPartAdded(_InItem):
    type: Literal["response.content_part.added"]
    content_index: int
    part: OutputText


class ContentPartDone(_InItem):
    type: Literal["response.content_part.done"]
    content_index: int
    part: OutputText


class OutputTextDelta(_InItem):
    type: Literal["response.output_text.delta"]
    content_index: int
    delta: str
    logprobs: list[Any]


class OutputTextDone(_InItem):
    type: Literal["response.output_text.done"]
    content_index: int
    text: str
    logprobs: list[Any]


class SummaryPartAdded(_InItem):
    type: Literal["response.reasoning_summary_part.added"]
    summary_index: int
    part: SummaryText


class SummaryPartDone(_InItem):
    type: Literal["response.reasoning_summary_part.done"]
    summary_index: int
    part: SummaryText


class SummaryTextDelta(_InItem):
    type: Literal["response.reasoning_summary_text.delta"]
    summary_index: int
    delta: str


class SummaryTextDone(_InItem):
    type: Literal["response.reasoning_summary_text.done"]
    summary_index: int
    text: str


class ArgumentsDelta(_InItem):
    type: Literal["response.function_call_arguments.delta"]
    delta: str


class ArgumentsDone(_InItem):
    type: Literal["response.function_call_arguments.done"]
    arguments: str


class ErrorEvent(_Event):
    """The answer failed once the stream had begun (a `response.failed` follows)."""

    type: Literal["error"]
    code: str | None
    message: str
    param: str | None


StreamEvent = Annotated[
    ResponseCreated
    | ResponseInProgress
    | ResponseCompleted
    | ResponseIncomplete
    | ResponseFailed
    | OutputItemAdded
    | OutputItemDone
    | ContentPartAdded
    | ContentPartDone
    | OutputTextDelta
    | OutputTextDone
    | SummaryPartAdded
    | SummaryPartDone
    | SummaryTextDelta
    | SummaryTextDone
    | ArgumentsDelta
    | ArgumentsDone
    | ErrorEvent,
    Field(discriminator="type"),
]
