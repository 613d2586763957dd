"""The `/v1/me` routes' bodies (a person, their consent, memory, export and erasure), in `ember.api.wire`'s
style."""

from __future__ import annotations

from typing import Any, Literal

from ember.api.wire import ConversationDetail, Number, Omitted, Post, UsageOut, Wire

# -- a person and their data ----------------------------------------------------------------------------------


class ConsentFlags(Wire):
    history: bool
    personalisation: bool
    health_storage: bool
    memory: bool
    media_storage: bool


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


class ExportedResponse(Wire):
    """A stored response of the Responses API as exported: its own input items, its output items (as
    `GET /v1/responses/{id}/input_items` and `GET /v1/responses/{id}` show them) and the settings it was made with."""

    id: str
    object: Literal["response"] = "response"
    user: str
    model: str
    created_at: int
    status: str
    previous_response_id: str | None
    settings: dict[str, Any]
    input: list[dict[str, Any]]
    output: list[dict[str, Any]]
    usage: UsageOut


class MemoryOut(Wire):
    """A fact the person asked Ember to remember (`user`: whose, in a tenant's export)."""

    id: str
    object: Literal["memory"] = "memory"
    text: str
    created_at: int
    user: Omitted[str] = None


class MemoryList(Wire):
    object: Literal["list"] = "list"
    data: list[MemoryOut]


class MemoryDeleted(Wire):
    id: str
    object: Literal["memory.deleted"] = "memory.deleted"
    deleted: Literal[True] = True


class ExportedMedia(Wire):
    """A stored image as exported: its bytes in base64 (`data`), named by the turns' parts by `sha256`."""

    user: str
    sha256: str
    mime: str
    width: int
    height: int
    bytes: int
    created_at: int
    data: str


class PersonExport(Wire):
    """Everything held about a person; `api_keys` only for a key's owner exporting their whole tenant."""

    object: Literal["person.export"] = "person.export"
    id: str
    exported_at: int
    consent: dict[str, ConsentFlags]
    conversations: list[ConversationDetail]
    responses: list[ExportedResponse]
    memories: list[MemoryOut]
    media: list[ExportedMedia]
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
