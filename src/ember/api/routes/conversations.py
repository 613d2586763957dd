"""`GET /v1/conversations` and `GET /v1/conversations/{id}`: stored history, per person (a key sees only
the people in its own namespace)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query

from ember.api.deps import PipelineDep, PrincipalDep

router = APIRouter()

UserQuery = Annotated[
    str | None, Query(min_length=1, max_length=256, description="whose history (the chat request's `user`)")
]


@router.get("/v1/conversations")
async def list_conversations(
    pipeline: PipelineDep,
    principal: PrincipalDep,
    user: UserQuery = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    person = principal.person(user)
    rows = await anyio.to_thread.run_sync(lambda: pipeline.store.list_conversations(person, limit))
    return {"object": "list", "data": rows}


@router.get("/v1/conversations/{conversation_id}")
async def get_conversation(
    conversation_id: str, pipeline: PipelineDep, principal: PrincipalDep, user: UserQuery = None
) -> dict[str, Any]:
    person = principal.person(user)
    return await anyio.to_thread.run_sync(lambda: pipeline.store.get_conversation(conversation_id, person))
