"""Function calling on any engine: the offered tools become a prompt, and a call is written under a JSON
schema built from the tools' own schemas, so it always parses and its arguments validate.

    async for delta in call_or_answer(engine, messages, params):   # params.tools, params.tool_choice
        ...   # text deltas, or tool-call pieces ending with finish_reason "tool_calls"

An engine that calls tools itself (`Capabilities.tools`: a remote vLLM or SGLang) is handed the tools as they
are. On every other engine (llama.cpp, whose packaged models have no reliable tool template) Ember runs:
1. with `tool_choice` `auto`, a relevance gate: the packaged sentence embedder compares the last user message
   with each tool's name and description; below `RELEVANT` for every tool, or when the last turn is a tool's
   result (the model now answers from it), the answer is plain text without the tools' prompt. (The packaged
   0.5B model, asked to pick a tool or "none", never picked "none" on a 10-prompt dev set; the gate sorted 9 of
   those 10; `ember eval tools` is what measures it.)
2. otherwise (and always under `required` or a named function) a call pass constrained to
   `{"calls": [{"name", "arguments"}, ...]}`, one call unless `parallel_tool_calls`, each call's arguments
   under its function's schema;
3. under `auto`, a call whose required arguments were not taken from what the person wrote
   (`ember.grounding`) is dropped, and when none is left the model answers in text instead.
Calls are streamed as OpenAI streams them: per call, its id and name first, then its arguments in pieces.
Calls to `params.server_tools` (Ember's own specialists, offered by the Responses API) are not the caller's
to run: `run` runs them, they are reported as `Delta.server_calls`, and the model answers again with their
results in the conversation (at most MAX_SERVER_ROUNDS times); calls to the caller's functions still end
the answer with finish_reason "tool_calls".
Earlier calls and tool results in the history are written as text the model can read. The last delta's usage
is the sum of the passes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import anyio

from ember.engines.base import Engine
from ember.engines.embeddings import Embedders
from ember.engines.passes import complete, with_system
from ember.errors import EngineError
from ember.grounding import Said, grounded
from ember.types import (
    Answer,
    Delta,
    GenerationParams,
    Message,
    ServerCall,
    Tool,
    ToolCall,
    ToolCallPiece,
    ToolChoice,
    Usage,
    last_user_text,
)

RELEVANT = 0.2  # cosine similarity of message and tool at which a call is written (set on the dev prompts)
ARGUMENT_PIECE = 24  # characters of arguments per streamed piece
MAX_PARALLEL_CALLS = 8
MAX_SERVER_ROUNDS = 3  # answers that may each run server tools before the model must answer
TOOLS_PROMPT = (
    "You can call these functions. Each is given as its name, what it does and the JSON Schema of its "
    "arguments:\n{tools}\n\nCall a function only when it does what the user asks for; give every argument "
    "its value from the conversation, and never invent a value the user did not give when it is required."
)
CALL_PROMPT = (
    "Now call the function{s} needed to do what the user asked{only}. Write the call{s} as JSON: "
    '{{"calls": [{{"name": ..., "arguments": {{...}}}}]}}.'
)


def call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def offers_tools(params: GenerationParams) -> bool:
    """Whether the model may or must call one of `params.tools`."""
    return bool(params.tools) and params.tool_choice.kind != "none"


RunServerCall = Callable[[ToolCall], Awaitable[ServerCall]]


async def call_or_answer(
    engine: Engine,
    messages: list[Message],
    params: GenerationParams,
    embedders: Embedders,
    run: RunServerCall | None = None,
) -> AsyncIterator[Delta]:
    """Answer `messages`, calling `params.tools` as `params.tool_choice` allows (see the module's text);
    `embedders` score whether a tool fits under `auto` (loaded only then, off the event loop); `run` runs a call
    to one of `params.server_tools`."""
    spent = Usage()
    for round_ in range(MAX_SERVER_ROUNDS + 1):
        answer = Answer()
        async for delta in _one_answer(engine, messages, params, embedders):
            if delta.usage is not None:
                delta.usage = spent + delta.usage
            answer.add(delta)
            if run is None or not (delta.tool_calls or delta.finish_reason == "tool_calls"):
                yield delta  # with `run`, calls are held back until it is known whose they are
        if run is None or answer.finish_reason != "tool_calls":
            return
        spent = answer.usage or spent
        ours = [c for c in answer.tool_calls if c.name in params.server_tools]
        theirs = [c for c in answer.tool_calls if c.name not in params.server_tools]
        done = [await run(call) for call in ours]
        if done:
            yield Delta(server_calls=tuple(done))
        if theirs or not done:
            for delta in stream_calls(theirs):
                yield delta
            yield Delta(finish_reason="tool_calls", usage=spent)
            return
        results = [Message("tool", d.output, tool_call_id=d.id) for d in done]
        messages = [*messages, Message("assistant", "", tool_calls=tuple(ours)), *results]
        # `required` (or a named function) was met by these calls; the last round must answer in text
        params = replace(params, tool_choice=ToolChoice("none" if round_ == MAX_SERVER_ROUNDS - 1 else "auto"))


async def _one_answer(
    engine: Engine, messages: list[Message], params: GenerationParams, embedders: Embedders
) -> AsyncIterator[Delta]:
    """One answer: text, or calls (the caller's and the server's alike) ending with finish_reason "tool_calls"."""
    if engine.capabilities.tools:
        async for delta in engine.stream(messages, params):
            yield delta
        return
    history = as_text(messages)
    chosen = await relevant_tool(messages, params, embedders) if offers_tools(params) else None
    if chosen is None:
        async for delta in engine.stream(history, replace(params, tools=(), tool_choice=ToolChoice())):
            yield delta
        return
    prompted = with_system(history, TOOLS_PROMPT.format(tools=describe(params.tools)))
    calls, usage = await write_calls(engine, prompted, params, chosen)
    if params.tool_choice.kind == "auto" and calls:
        calls = invented_dropped(calls, params.tools, messages)
        if not calls:  # every call made up its required arguments: nothing the person said fits a tool
            async for delta in engine.stream(history, replace(params, tools=(), tool_choice=ToolChoice())):
                if delta.usage is not None:
                    delta.usage = usage + delta.usage
                yield delta
            return
    for delta in stream_calls(calls):
        yield delta
    yield Delta(finish_reason="tool_calls" if calls else "length", usage=usage)


def invented_dropped(calls: list[ToolCall], tools: tuple[Tool, ...], messages: list[Message]) -> list[ToolCall]:
    """The calls whose required arguments all come from what the person wrote (`ember.grounding`)."""
    said = Said.of("\n".join(m.content for m in messages if m.role in ("user", "tool")))
    by_name = {t.name: t for t in tools}
    return [c for c in calls if c.name in by_name and grounded(c, by_name[c.name], said)]


async def relevant_tool(messages: list[Message], params: GenerationParams, embedders: Embedders) -> str | None:
    """The tool a call should start with: the named one; under `required`, the closest to the last user
    message; under `auto`, the closest if it is at least RELEVANT and the last turn is not a tool's result."""
    choice = params.tool_choice
    if choice.name is not None:
        return choice.name
    if choice.kind == "auto" and messages and messages[-1].role == "tool":
        return None
    texts = [last_user_text(messages), *(f"{t.name.replace('_', ' ')}: {t.description}" for t in params.tools)]
    embedder = await anyio.to_thread.run_sync(embedders.get, 1)  # loaded once, on the first gated request
    vectors = await anyio.to_thread.run_sync(embedder.embed, texts)
    scores = vectors[1:] @ vectors[0]
    best = int(scores.argmax())
    if choice.kind == "auto" and float(scores[best]) < RELEVANT:
        return None
    return params.tools[best].name


def calls_schema(tools: tuple[Tool, ...], most: int) -> dict[str, object]:
    """The JSON Schema of a call pass's output: 1 to `most` calls, each to one of `tools` with its arguments."""
    options = [
        {
            "type": "object",
            "properties": {"name": {"const": t.name}, "arguments": t.parameters},
            "required": ["name", "arguments"],
        }
        for t in tools
    ]
    calls = {"type": "array", "items": {"anyOf": options}, "minItems": 1, "maxItems": most}
    return {"type": "object", "properties": {"calls": calls}, "required": ["calls"]}


async def write_calls(
    engine: Engine, prompted: list[Message], params: GenerationParams, chosen: str
) -> tuple[list[ToolCall], Usage]:
    """The call pass: the calls the model writes (under `calls_schema`), and what they cost. A named
    `tool_choice` allows that function only; otherwise `chosen` is the one asked for first. Calls cut off by
    `max_tokens` are no calls at all (the answer then ends on its length limit)."""
    named = params.tool_choice.name
    tools = tuple(t for t in params.tools if t.name == named) if named else params.tools
    most = MAX_PARALLEL_CALLS if params.parallel_tool_calls else 1
    only = f", starting with {chosen}" if len(tools) > 1 else ""
    prompt = CALL_PROMPT.format(s="s" if most > 1 else "", only=only)
    constrained = replace(params, tools=(), tool_choice=ToolChoice(), json_schema=calls_schema(tools, most))
    done = await complete(engine, [*prompted, Message("user", prompt)], constrained)
    try:
        written = json.loads(done.text)["calls"]
        calls = [ToolCall(call_id(), c["name"], json.dumps(c["arguments"], ensure_ascii=False)) for c in written]
    except (ValueError, KeyError, TypeError) as exc:
        if done.finish == "length":
            return [], done.usage
        raise EngineError("the model could not write a tool call: its output was not the calls' JSON") from exc
    return calls, done.usage


def stream_calls(calls: list[ToolCall]) -> list[Delta]:
    """`calls` as streamed deltas: per call, its id and name, then its arguments in pieces."""
    deltas = []
    for index, call in enumerate(calls):
        deltas.append(Delta(tool_calls=(ToolCallPiece(index, call.id, call.name),)))
        text = call.arguments
        for start in range(0, len(text), ARGUMENT_PIECE):
            deltas.append(Delta(tool_calls=(ToolCallPiece(index, arguments=text[start : start + ARGUMENT_PIECE]),)))
    return deltas


def describe(tools: tuple[Tool, ...]) -> str:
    """The tools as the prompt lists them: one JSON object a line."""
    return "\n".join(
        json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters}, ensure_ascii=False)
        for t in tools
    )


def as_text(messages: list[Message]) -> list[Message]:
    """`messages` as a model without a tool template reads them: an assistant's calls as the JSON it writes
    them in, a tool's result as a user turn naming the call it answers."""
    names = {c.id: c.name for m in messages for c in m.tool_calls}
    out = []
    for m in messages:
        if m.tool_calls:
            written = {"calls": [{"name": c.name, "arguments": _arguments(c.arguments)} for c in m.tool_calls]}
            text = "\n".join(filter(None, [m.content, json.dumps(written, ensure_ascii=False)]))
            out.append(replace(m, content=text, tool_calls=()))
        elif m.role == "tool":
            name = names.get(m.tool_call_id or "", "a function")
            out.append(Message("user", f"Result of {name} (call {m.tool_call_id}):\n{m.content}"))
        else:
            out.append(m)
    return out


def _arguments(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text
