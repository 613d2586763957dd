"""The engine contract: one async streaming method plus a capabilities record (speech and embedding
engines: one async method each, `transcribe` and `embed`).

Usage::

    engine = registry.engines.get("llama_cpp")(spec, settings)
    await engine.start()
    async for delta in engine.stream(messages, GenerationParams(max_tokens=64)):
        print(delta.content, end="")
    await engine.close()

`stream` yields text deltas; its last delta has `finish_reason` and `usage`. Closing the iterator
early (a client went away) must stop the generation and free the engine's slot promptly. Errors the
request caused are raised as `ember.errors.InvalidRequest` subclasses before the first delta.
Engines know nothing of HTTP, modes or storage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ember.errors import ContextLengthExceeded, EmberError, EngineError, InvalidRequest
from ember.intake.audio import AudioClip
from ember.intake.images import data_uri
from ember.types import (
    Capabilities,
    Delta,
    GenerationParams,
    Message,
    ToolCallPiece,
    TranscribeOptions,
    Transcript,
    Usage,
)


class Engine(Protocol):
    name: str
    capabilities: Capabilities
    active: int  # generations in flight right now
    server: str | None  # the llama.cpp server a managed child runs ("llama-server", "xllamacpp"); else None

    async def start(self) -> None:
        """Load the model or open the connection. Idempotent."""

    def stream(self, messages: list[Message], params: GenerationParams) -> AsyncIterator[Delta]:
        """Generate an answer to `messages`, piece by piece."""
        ...

    async def close(self) -> None:
        """Release the model or connection."""


class SpeechEngine(Protocol):
    """Speech to text. `transcribe` gets a decoded clip (samples for local engines, bytes for remote)."""

    name: str
    active: int

    async def start(self) -> None: ...

    async def transcribe(self, clip: AudioClip, options: TranscribeOptions) -> Transcript: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Embeddings:
    """What an embedding engine made of some texts: one float32 row per text, in their order, and the tokens it
    read, over all of them."""

    vectors: npt.NDArray[np.float32]
    tokens: int


class EmbeddingEngine(Protocol):
    """Texts to vectors. `dimensions`, when given, is the vector size asked for: an engine that cannot give it
    raises InvalidRequest (param `dimensions`)."""

    name: str
    active: int

    async def start(self) -> None: ...

    async def embed(self, texts: list[str], dimensions: int | None) -> Embeddings: ...

    async def close(self) -> None: ...


def _wire(message: Message, vision: bool) -> dict[str, object]:
    """One OpenAI chat message: with `vision`, its images as `image_url` parts before its text; without, its
    images' descriptions before its text (`Message.as_text`); an assistant's tool calls, a tool's call id."""
    out: dict[str, object] = {"role": message.role, "content": message.as_text()}
    if vision and message.images:
        parts: list[dict[str, object]] = [
            {"type": "image_url", "image_url": {"url": data_uri(i)}} for i in message.images
        ]
        if message.content:
            parts.append({"type": "text", "text": message.content})
        out["content"] = parts
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def _tools(params: GenerationParams) -> dict[str, object]:
    """The request's tools as OpenAI's fields (for engines that call tools themselves)."""
    if not params.tools:
        return {}
    choice = params.tool_choice
    return {
        "tools": [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in params.tools
        ],
        "tool_choice": {"type": "function", "function": {"name": choice.name}} if choice.name else choice.kind,
        "parallel_tool_calls": params.parallel_tool_calls,
    }


def openai_body(messages: list[Message], params: GenerationParams, vision: bool = False) -> dict[str, object]:
    """The OpenAI chat-completions request body for a streamed generation (images as parts with `vision`)."""
    body: dict[str, object] = {
        "messages": [_wire(m, vision) for m in messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    optional = {
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "seed": params.seed,
        "stop": list(params.stop) or None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    body.update(_tools(params))
    if params.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": params.json_schema, "strict": True},
        }
    return body


def delta_from_chunk(chunk: dict[str, object]) -> Delta | None:
    """Turn one OpenAI `chat.completion.chunk` into a Delta (None if it carries nothing)."""
    delta = Delta()
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices:
        choice = choices[0]
        part = choice.get("delta") or {}
        delta.content = part.get("content") or ""
        delta.reasoning = part.get("reasoning_content") or ""
        delta.tool_calls = tuple(_piece(c) for c in part.get("tool_calls") or [] if isinstance(c, dict))
        delta.finish_reason = choice.get("finish_reason")
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        delta.usage = Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
    if not (delta.content or delta.reasoning or delta.tool_calls or delta.finish_reason or delta.usage):
        return None
    return delta


def _piece(call: dict[str, Any]) -> ToolCallPiece:
    function = call.get("function") or {}
    return ToolCallPiece(
        int(call.get("index", 0)), call.get("id"), function.get("name"), function.get("arguments") or ""
    )


def error_from_payload(status: int, payload: object) -> EmberError:
    """Map an OpenAI-style error body from an engine (llama.cpp, vLLM, another Ember) to our tree."""
    err = payload.get("error", payload) if isinstance(payload, dict) else {}
    if not isinstance(err, dict):
        err = {"message": str(err)}
    message = str(err.get("message") or payload)
    kind = f"{err.get('type', '')} {err.get('code', '')} {message}".lower()
    if "exceed_context" in kind or "context_length" in kind or "maximum context length" in kind:
        return ContextLengthExceeded(message)
    if 400 <= status < 500 and status != 429:
        return InvalidRequest(message, param=err.get("param"))
    return EngineError(f"engine error ({status}): {message}")
