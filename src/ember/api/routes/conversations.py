"""Stored history, per person (a key sees only the people of its own tenant, and only the conversations held
with modes its scopes allow): `GET /v1/conversations` (newest first; `q` finds the ones whose title or a
message holds the text, ignoring case), `GET /v1/conversations/{id}`, `PATCH /v1/conversations/{id}` (a new
title, which the model's titles never replace), `DELETE /v1/conversations/{id}` (the conversation and its
messages, at once and for good), `POST /v1/conversations/{id}/branch` (show another branch: `{"seq"}`, a turn
on it) and `GET /v1/conversations/{id}/export?format=markdown|json` (one conversation as a file to keep; the
JSON holds its stored images in base64 as `media`).

A conversation is a tree of turns (regenerating an answer or editing a message adds a branch; see the chat
request's `replace`); reading or exporting one shows its active branch, each turn with its siblings."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ember.api.deps import PipelineDep, PrincipalDep
from ember.api.wire import ERRORS, Conversation, ConversationDeleted, ConversationDetail, ConversationList
from ember.policy import privacy
from ember.store.markdown import as_markdown
from ember.store.media import MediaStore

router = APIRouter(responses=ERRORS)

UserQuery = Annotated[
    str | None, Query(min_length=1, max_length=256, description="whose history (the chat request's `user`)")
]
TITLE_MAX = 200


class ConversationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    title: str = Field(min_length=1, max_length=TITLE_MAX, pattern=r"\S")


class BranchChoice(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    seq: int = Field(ge=0, le=2**53, description="a turn on the branch to show (it ends at the newest turn under it)")


@router.get("/v1/conversations")
async def list_conversations(
    pipeline: PipelineDep,
    principal: PrincipalDep,
    user: UserQuery = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    q: Annotated[str | None, Query(min_length=1, max_length=200, description="text to look for")] = None,
) -> ConversationList:
    person, modes = privacy.person_of(principal, user), pipeline.modes_for(principal.scopes)
    rows = await anyio.to_thread.run_sync(lambda: pipeline.store.list_conversations(person, limit, modes=modes, text=q))
    return ConversationList.model_validate({"data": rows})


@router.get("/v1/conversations/{conversation_id}")
async def get_conversation(
    conversation_id: str, pipeline: PipelineDep, principal: PrincipalDep, user: UserQuery = None
) -> ConversationDetail:
    person, modes = privacy.person_of(principal, user), pipeline.modes_for(principal.scopes)
    found = await anyio.to_thread.run_sync(lambda: pipeline.store.get_conversation(conversation_id, person, modes))
    return ConversationDetail.model_validate(found)


@router.patch("/v1/conversations/{conversation_id}")
async def rename_conversation(
    conversation_id: str,
    change: ConversationUpdate,
    pipeline: PipelineDep,
    principal: PrincipalDep,
    user: UserQuery = None,
) -> Conversation:
    person, modes = privacy.person_of(principal, user), pipeline.modes_for(principal.scopes)
    title = change.title.strip()
    row = await anyio.to_thread.run_sync(
        lambda: pipeline.store.rename_conversation(conversation_id, person, title, modes)
    )
    return Conversation.model_validate(row)


@router.post("/v1/conversations/{conversation_id}/branch")
async def show_branch(
    conversation_id: str,
    choice: BranchChoice,
    pipeline: PipelineDep,
    principal: PrincipalDep,
    user: UserQuery = None,
) -> ConversationDetail:
    person, modes = privacy.person_of(principal, user), pipeline.modes_for(principal.scopes)
    found = await anyio.to_thread.run_sync(
        lambda: pipeline.store.show_branch(conversation_id, person, choice.seq, modes)
    )
    return ConversationDetail.model_validate(found)


@router.delete("/v1/conversations/{conversation_id}")
async def delete_conversation(
    conversation_id: str, pipeline: PipelineDep, principal: PrincipalDep, user: UserQuery = None
) -> ConversationDeleted:
    person, modes = privacy.person_of(principal, user), pipeline.modes_for(principal.scopes)
    await anyio.to_thread.run_sync(lambda: pipeline.store.delete_conversation(conversation_id, person, modes))
    return ConversationDeleted(id=conversation_id)


@router.get(
    "/v1/conversations/{conversation_id}/export",
    responses={200: {"content": {"text/markdown": {}, "application/json": {}}}},
    response_class=Response,
)
async def export_conversation(
    conversation_id: str,
    pipeline: PipelineDep,
    principal: PrincipalDep,
    user: UserQuery = None,
    format: Annotated[Literal["markdown", "json"], Query(description="the file's format")] = "markdown",
) -> Response:
    person, modes = privacy.person_of(principal, user), pipeline.modes_for(principal.scopes)
    found = await anyio.to_thread.run_sync(lambda: pipeline.store.get_conversation(conversation_id, person, modes))
    detail = ConversationDetail.model_validate(found).wire()
    if format == "json":
        images = await anyio.to_thread.run_sync(MediaStore(pipeline.store.db).of_conversation, conversation_id, person)
        kept = {**detail, "media": images} if images else detail  # the stored images' bytes, in base64
        body, media, suffix = json.dumps(kept, ensure_ascii=False, indent=2), "application/json", "json"
    else:
        body, media, suffix = as_markdown(detail), "text/markdown; charset=utf-8", "md"
    disposition = f'attachment; filename="{conversation_id}.{suffix}"'  # ids are [A-Za-z0-9_.:-] only
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})
