"""`GET /v1/conversations` and `GET /v1/conversations/{id}`: stored history, per user."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query

from ember.api.deps import PipelineDep

router = APIRouter()

UserQuery = Annotated[str, Query(min_length=1, max_length=256, description="owner (the chat request's `user`)")]


@router.get("/v1/conversations")
async def list_conversations(
    pipeline: PipelineDep,
    user: UserQuery = "anonymous",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    rows = await anyio.to_thread.run_sync(lambda: pipeline.store.list_conversations(user, limit))
    return {"object": "list", "data": rows}


@router.get("/v1/conversations/{conversation_id}")
async def get_conversation(
    conversation_id: str, pipeline: PipelineDep, user: UserQuery = "anonymous"
) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(lambda: pipeline.store.get_conversation(conversation_id, user))
