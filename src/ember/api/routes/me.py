"""`/v1/me`: the person a request acts for and their consent flags (`GET /v1/me`, `PATCH /v1/me/consent`),
an export of everything held about them (`GET /v1/me/export`) and erasure (`DELETE /v1/me`).

The person is the principal's view of the optional `user` query parameter, as for conversations; a key's
owner calling without `user` answers for its whole tenant and its API keys, which takes the `admin` scope
(see `ember.policy.privacy`, which also says which scopes reach a person at all).
Routes only translate: the policy lives in `privacy`, the rows in the store.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter

from ember.api.deps import PipelineDep, PrincipalDep
from ember.api.routes.conversations import UserQuery
from ember.api.wire import ERRORS, ConsentFlags, PersonDeleted, PersonExport, PersonOut
from ember.policy import privacy
from ember.store.consent import Consent, consent_of
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
