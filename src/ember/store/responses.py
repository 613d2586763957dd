"""Stored responses of the Responses API: one row per response, its own input items and its output items as
OpenAI shapes them (JSON), the request's settings the response shows, its usage, and the response it
continued (`previous_id`).

A response belongs to one person (`tenant`, `person`, compared exactly, as everywhere in the store): reading,
continuing and deleting another person's response is NotFound, exactly as for an id never issued. This
module stores, reads back and deletes; what to keep is `ember.serving.responses`'s and `ember.policy.privacy`'s.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, delete, select

from ember.errors import NotFound, shown
from ember.store.schema import responses
from ember.store.sql import owned_by
from ember.types import Person, Usage

Item = dict[str, Any]  # one input or output item, as OpenAI's JSON has it
MAX_CHAIN = 1_000  # responses replayed before a new one at most (a context fills up long before)


def new_response_id() -> str:
    return "resp_" + uuid.uuid4().hex


@dataclass(frozen=True)
class StoredResponse:
    """A response as stored: `input` holds only its own request's items (not those of the responses it
    continued), `settings` the request's settings it shows (instructions, tools, text format, metadata, …)."""

    id: str
    person: Person
    created_at: float
    model: str
    previous_id: str | None
    status: str
    input: list[Item]
    output: list[Item]
    settings: dict[str, Any]
    usage: Usage


class ResponseStore:
    """The `responses` table on the store's database; methods are synchronous (async callers use a thread)."""

    def __init__(self, db: Engine) -> None:
        self.db = db

    def save(self, response: StoredResponse) -> None:
        row = {
            "id": response.id,
            "tenant": response.person.tenant,
            "person": response.person.name,
            "previous_id": response.previous_id,
            "model": response.model,
            "status": response.status,
            "created_at": response.created_at,
            "input": json.dumps(response.input),
            "output": json.dumps(response.output),
            "settings": json.dumps(response.settings),
            "usage": json.dumps(asdict(response.usage)),
        }
        with self.db.begin() as conn:
            conn.execute(responses.insert().values(**row))

    def get(self, response_id: str, person: Person) -> StoredResponse:
        """`person`'s response `response_id` (NotFound if there is none of theirs by that id)."""
        with self.db.connect() as conn:
            row = conn.execute(
                select(responses).where(responses.c.id == response_id, *owned_by(responses, person))
            ).first()
        if row is None:
            raise NotFound(f"Response with id {shown(response_id)} not found.", param="response_id")
        return _stored(row._mapping)

    def chain(self, response_id: str, person: Person) -> list[StoredResponse]:
        """`person`'s response `response_id` and those it continued, oldest first. NotFound if `response_id`
        is not theirs; the chain ends early where an earlier response was deleted (or at MAX_CHAIN)."""
        found = [self.get(response_id, person)]
        with self.db.connect() as conn:
            while (previous := found[-1].previous_id) is not None and len(found) < MAX_CHAIN:
                row = conn.execute(
                    select(responses).where(responses.c.id == previous, *owned_by(responses, person))
                ).first()
                if row is None:
                    break
                found.append(_stored(row._mapping))
        return found[::-1]

    def delete(self, response_id: str, person: Person) -> None:
        """Hard-delete `person`'s response (NotFound if there is none of theirs by that id)."""
        with self.db.begin() as conn:
            gone = conn.execute(
                delete(responses).where(responses.c.id == response_id, *owned_by(responses, person))
            ).rowcount
        if not gone:
            raise NotFound(f"Response with id {shown(response_id)} not found.", param="response_id")

    def export_person(self, person: Person, *, tenant: bool) -> list[dict[str, Any]]:
        """The person's (with `tenant`, everyone's in their tenant) stored responses, oldest first."""
        query = (
            select(responses)
            .where(*owned_by(responses, person, whole=tenant))
            .order_by(responses.c.created_at, responses.c.id)
        )
        with self.db.connect() as conn:
            return [_exported(_stored(row._mapping)) for row in conn.execute(query)]

    def delete_person(self, person: Person, *, tenant: bool) -> int:
        """Hard-delete the person's (with `tenant`, everyone's in their tenant) responses; how many went."""
        with self.db.begin() as conn:
            return int(conn.execute(delete(responses).where(*owned_by(responses, person, whole=tenant))).rowcount)

    def purge_before(self, cutoff: float) -> int:
        """Delete the responses created before `cutoff` (epoch seconds); how many went."""
        with self.db.begin() as conn:
            return int(conn.execute(delete(responses).where(responses.c.created_at < cutoff)).rowcount)


def _stored(row: Any) -> StoredResponse:
    return StoredResponse(
        id=row["id"],
        person=Person(row["tenant"], row["person"]),
        created_at=row["created_at"],
        model=row["model"],
        previous_id=row["previous_id"],
        status=row["status"],
        input=json.loads(row["input"]),
        output=json.loads(row["output"]),
        settings=json.loads(row["settings"]),
        usage=Usage(**json.loads(row["usage"])),
    )


def _exported(response: StoredResponse) -> dict[str, Any]:
    return {
        "id": response.id,
        "object": "response",
        "user": response.person.label,
        "model": response.model,
        "created_at": int(response.created_at),
        "status": response.status,
        "previous_response_id": response.previous_id,
        "settings": response.settings,
        "input": response.input,
        "output": response.output,
        "usage": response.usage.as_dict(),
    }
