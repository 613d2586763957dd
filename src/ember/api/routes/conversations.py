"""`GET /v1/conversations` and `GET /v1/conversations/{id}`: stored history, per person (a key sees only
the people of its own tenant, and only the conversations held with modes its scopes allow)."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Query

from ember.api.deps import PipelineDep, PrincipalDep
from ember.api.wire import ERRORS, ConversationDetail, ConversationList
from ember.policy import privacy

router = APIRouter(responses=ERRORS)

UserQuery = Annotated[
    str | None, Query(min_length=1, max_length=256, description="whose history (the chat request's `user`)")
]


@router.get("/v1/conversations")
async def list_conversations(
    pipeline: PipelineDep,
    principal: PrincipalDep,
    user: UserQuery = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ConversationList:
    person, modes = privacy.person_of(principal, user), pipeline.modes_for(principal.scopes)
    rows = await anyio.to_thread.run_sync(lambda: pipeline.store.list_conversations(person, limit, modes=modes))
    return ConversationList.model_validate({"data": rows})


@router.get("/v1/conversations/{conversation_id}")
async def get_conversation(
    conversation_id: str, pipeline: PipelineDep, principal: PrincipalDep, user: UserQuery = None
) -> ConversationDetail:
    person, modes = privacy.person_of(principal, user), pipeline.modes_for(principal.scopes)
    found = await anyio.to_thread.run_sync(lambda: pipeline.store.get_conversation(conversation_id, person, modes))
    return ConversationDetail.model_validate(found)
