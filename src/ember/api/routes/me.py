"""`/v1/me`: the person a request acts for and their consent flags (`GET /v1/me`, `PATCH /v1/me/consent`),
an export of everything held about them (`GET /v1/me/export`), erasure (`DELETE /v1/me`), and their memory
(`GET`/`POST /v1/me/memories`, `DELETE /v1/me/memories/{id}`: adding takes the `memory` consent flag on).

The person is the principal's view of the optional `user` query parameter, as for conversations; a key's
owner calling without `user` answers for its whole tenant and its API keys, which takes the `admin` scope
(see `ember.policy.privacy`, which also says which scopes reach a person at all).
Routes only translate: the policy lives in `privacy`, the rows in the store.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from ember.api.deps import PipelineDep, PrincipalDep
from ember.api.me_wire import (
    ConsentFlags,
    MemoryDeleted,
    MemoryList,
    MemoryOut,
    PersonDeleted,
    PersonExport,
    PersonOut,
)
from ember.api.routes.conversations import UserQuery
from ember.api.wire import ERRORS
from ember.policy import memory, privacy
from ember.store.consent import Consent, consent_of
from ember.store.memories import MemoryStore
from ember.types import Person

router = APIRouter(responses=ERRORS)


def _person(person: Person, consent: Consent) -> PersonOut:
    return PersonOut(id=person.label, consent=ConsentFlags.model_validate(consent.as_dict()))


@router.get("/v1/me")
async def get_me(pipeline: PipelineDep, principal: PrincipalDep, user: UserQuery = None) -> PersonOut:
    person = privacy.person_of(principal, user)
    consent = await anyio.to_thread.run_sync(consent_of, pipeline.store, person)
    return _person(person, consent)


@router.patch("/v1/me/consent")
async def update_consent(
    body: privacy.ConsentUpdate, pipeline: PipelineDep, principal: PrincipalDep, user: UserQuery = None
) -> PersonOut:
    person = privacy.person_of(principal, user)
    consent = await anyio.to_thread.run_sync(privacy.set_consent, pipeline.store, person, body)
    return _person(person, consent)


@router.get("/v1/me/export")
async def export_me(pipeline: PipelineDep, principal: PrincipalDep, user: UserQuery = None) -> PersonExport:
    who = privacy.Subject.of(principal, user)
    return PersonExport.model_validate(await anyio.to_thread.run_sync(privacy.export, pipeline.store, who))


@router.delete("/v1/me")
async def delete_me(pipeline: PipelineDep, principal: PrincipalDep, user: UserQuery = None) -> PersonDeleted:
    who = privacy.Subject.of(principal, user)
    return PersonDeleted.model_validate(await anyio.to_thread.run_sync(privacy.forget, pipeline.store, who))


class MemoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    text: str = Field(min_length=1, max_length=memory.MAX_FACT_CHARS, pattern=r"\S")


@router.get("/v1/me/memories")
async def list_memories(pipeline: PipelineDep, principal: PrincipalDep, user: UserQuery = None) -> MemoryList:
    person = privacy.person_of(principal, user)
    kept = await anyio.to_thread.run_sync(MemoryStore(pipeline.store.db).of, person)
    return MemoryList(data=[MemoryOut.model_validate(m.as_dict()) for m in kept])


@router.post("/v1/me/memories")
async def add_memory(
    body: MemoryIn, pipeline: PipelineDep, principal: PrincipalDep, user: UserQuery = None
) -> MemoryOut:
    person = privacy.person_of(principal, user)

    def add() -> MemoryOut:
        memory.require_on(consent_of(pipeline.store, person))
        return MemoryOut.model_validate(MemoryStore(pipeline.store.db).add(person, body.text.strip()).as_dict())

    return await anyio.to_thread.run_sync(add)


@router.delete("/v1/me/memories/{memory_id}")
async def delete_memory(
    memory_id: str, pipeline: PipelineDep, principal: PrincipalDep, user: UserQuery = None
) -> MemoryDeleted:
    person = privacy.person_of(principal, user)
    await anyio.to_thread.run_sync(MemoryStore(pipeline.store.db).delete, person, memory_id)
    return MemoryDeleted(id=memory_id)
