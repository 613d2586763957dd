"""`GET /v1/conversations` and `GET /v1/conversations/{id}`: stored history, per person (a key sees only
the people of its own tenant, and only the conversations held with modes its scopes allow)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query

from ember.api.deps import PipelineDep, PrincipalDep
from ember.policy import privacy

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
    person, modes = privacy.person_of(principal, user), pipeline.modes_for(principal.scopes)
    rows = await anyio.to_thread.run_sync(lambda: pipeline.store.list_conversations(person, limit, modes=modes))
    return {"object": "list", "data": rows}


@router.get("/v1/conversations/{conversation_id}")
async def get_conversation(
    conversation_id: str, pipeline: PipelineDep, principal: PrincipalDep, user: UserQuery = None
) -> dict[str, Any]:
    person, modes = privacy.person_of(principal, user), pipeline.modes_for(principal.scopes)
    return await anyio.to_thread.run_sync(lambda: pipeline.store.get_conversation(conversation_id, person, modes))
