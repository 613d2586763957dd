"""`/openapi.json` as Ember really answers, so clients and schema fuzzers can trust it.

FastAPI documents a 422 validation body that Ember never sends (every refusal is the OpenAI error
envelope, `ember.api.errors`, and validation errors are 400). `install` replaces it on every operation
with the envelope for 4XX and 5XX answers, and documents the chat completion (JSON or an SSE stream)
and the transcription's text formats. Request bodies are FastAPI's, from the pydantic models.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

_NULLABLE_STRING = {"anyOf": [{"type": "string"}, {"type": "null"}]}
ERROR_RESPONSE: dict[str, Any] = {
    "title": "ErrorResponse",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string", "minLength": 1},
                "type": {"type": "string"},
                "param": _NULLABLE_STRING,
                "code": _NULLABLE_STRING,
            },
        }
    },
}
CHAT_COMPLETION: dict[str, Any] = {
    "title": "ChatCompletion",
    "type": "object",
    "required": ["id", "object", "created", "model", "choices", "usage"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "chat.completion"},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "message", "finish_reason"],
                "properties": {
                    "index": {"type": "integer"},
                    "message": {
                        "type": "object",
                        "required": ["role", "content"],
                        "properties": {"role": {"const": "assistant"}, "content": {"type": "string"}},
                    },
                    "finish_reason": {"type": "string"},
                },
            },
        },
        "usage": {
            "type": "object",
            "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
            "properties": {
                "prompt_tokens": {"type": "integer", "minimum": 0},
                "completion_tokens": {"type": "integer", "minimum": 0},
                "total_tokens": {"type": "integer", "minimum": 0},
            },
        },
    },
}
SSE_EVENT: dict[str, Any] = {
    "title": "ServerSentEvent",
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string", "minLength": 1}},
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
_ERRORS = {
    "4XX": {"description": "A refused request", "content": {"application/json": {"schema": _ERROR_REF}}},
    "5XX": {"description": "A server or engine failure", "content": {"application/json": {"schema": _ERROR_REF}}},
}
_SUCCESS_CONTENT: dict[tuple[str, str], dict[str, Any]] = {
    ("/v1/chat/completions", "post"): {
        "application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletion"}},
        "text/event-stream": {"schema": SSE_EVENT},  # OpenAPI 3.1: the schema of each event
    },
    ("/v1/audio/transcriptions", "post"): {
        "application/json": {"schema": {"type": "object"}},
        "text/plain": {"schema": {"type": "string"}},
        "text/vtt": {"schema": {"type": "string"}},
    },
}


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite FastAPI's generated `schema` in place (see the module docstring); return it."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    components["ErrorResponse"] = ERROR_RESPONSE
    components["ChatCompletion"] = CHAT_COMPLETION
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses.update(_ERRORS)
            success = _SUCCESS_CONTENT.get((path, method))
            if success is not None and "200" in responses:
                responses["200"]["content"] = success
    return schema


def install(app: FastAPI) -> None:
    """Serve the rewritten schema at /openapi.json (made once, then cached by FastAPI)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        if "ErrorResponse" not in schema.get("components", {}).get("schemas", {}):
            document(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
