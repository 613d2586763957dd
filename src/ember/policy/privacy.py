"""Privacy policy: per-person consent flags, export and erasure of everything held about a person, and
retention (purging history not updated for `settings.retention_days`: conversations and stored responses).
Images are kept with stored turns only with the person's `media_storage` flag on (`keeping`), and deleted
as soon as it goes off.

A request reaches one person, `Principal.person(user)`: a key reaches only people of its own tenant, and
only with a scope under which people's data is kept (`chat`, `shopping`, `health`: an `audio`-only key holds
none). A key's owner acting for itself (no `user`) is answerable for its whole tenant: with the `admin`
scope its export shows every person of the tenant and its API keys, and its erasure deletes them, keys
included (hard-deleted, so the key in use stops working at once).
Erasure is one transaction over the shopping tables (events, posts, friendships, post audiences), one over
the stored responses, then one over every other table that names a person (each is idempotent, so a failed
erasure is simply repeated), then SQLite's write-ahead log is emptied into the database file, whose deleted rows are
overwritten (`secure_delete`); nothing about a person is cached outside the database (the engines' prompt caches are not
keyed by person and are not touched here; the recommender's fitted model, an aggregate over consenting
people, is refitted once their events are gone).

This module decides; `SqlStore` reads and deletes the rows. It knows nothing about HTTP, and it never
logs who was erased or what they said.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy.exc import SQLAlchemyError

from ember.config import Settings
from ember.errors import InvalidRequest, PermissionDenied
from ember.policy.keys import Principal
from ember.shopping.data import ShoppingData
from ember.store.consent import DEFAULT_CONSENT, FLAGS, Consent, consent_of
from ember.store.media import MediaStore
from ember.store.memories import MemoryStore
from ember.store.parts import Keeping
from ember.store.responses import ResponseStore
from ember.store.sql import SqlStore
from ember.types import Person

log = logging.getLogger(__name__)

DATA_SCOPES = ("chat", "shopping", "health")  # the scopes under which something about a person is kept
DAY_S = 86_400
PURGE_EVERY_S = 3_600.0  # how often the server re-runs the retention purge


class ConsentUpdate(BaseModel):
    """The body of `PATCH /v1/me/consent`: some of the flags, each a JSON boolean (no null, 0/1 or "true")."""

    model_config = ConfigDict(extra="forbid", strict=True)

    history: bool | None = None
    personalisation: bool | None = None
    health_storage: bool | None = None
    memory: bool | None = None
    media_storage: bool | None = None

    @field_validator(*FLAGS, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must be true or false")
        return value

    def changes(self) -> dict[str, bool]:
        return {name: bool(getattr(self, name)) for name in FLAGS if name in self.model_fields_set}


class HistoryOff(InvalidRequest):
    code = "history_off"


def person_of(principal: Principal, user: str | None) -> Person:
    """The person whose consent a request reads or changes (PermissionDenied for a key without a scope
    under which anything about people is kept)."""
    principal.require(*DATA_SCOPES)
    return principal.person(user)


@dataclass(frozen=True)
class Subject:
    """Whose data an export or erasure reaches: `person`, and with `tenant` (a key's owner acting for
    itself) everyone in their tenant and the API keys its owner holds."""

    person: Person
    tenant: bool = False

    @classmethod
    def of(cls, principal: Principal, user: str | None) -> Subject:
        """PermissionDenied unless the key may: a scope that keeps data for one person, `admin` for all."""
        whole = principal.key_id is not None and user is None
        if whole and "admin" not in principal.scopes:
            raise PermissionDenied(
                "exporting or erasing a key's owner (every person of it and its API keys) needs the 'admin' "
                "scope; pass `user` for one person"
            )
        return cls(person_of(principal, user), tenant=whole)


def set_consent(store: SqlStore, person: Person, update: ConsentUpdate) -> Consent:
    """Change some of `person`'s flags. Turning `media_storage` off deletes the images stored for them at once
    (their turns keep the descriptions, and say the image is no longer stored)."""
    changes = update.changes()
    if not changes:
        raise InvalidRequest(f"give at least one of {', '.join(FLAGS)}")
    store.set_consent(person, changes, DEFAULT_CONSENT.as_dict())
    if changes.get("media_storage") is False and MediaStore(store.db).forget(person):
        store.checkpoint()
    return consent_of(store, person)


def keeping(consent: Consent, settings: Settings) -> Keeping:
    """Which images a stored exchange keeps: with `media_storage` on, those up to `settings.media_max_bytes`."""
    return Keeping(consent.media_storage, settings.media_max_bytes)


def refuse_continuing(conversation_id: str | None, flag: str = "history") -> None:
    """With `flag` off nothing is stored, so there is no conversation to continue."""
    if conversation_id is not None:
        raise HistoryOff(
            f"this person's {flag!r} consent is off (PATCH /v1/me/consent), so no conversation is stored or "
            "continued: omit conversation_id and send the earlier turns in messages",
            param="conversation_id",
        )


def refuse_previous_response(previous_id: str | None, flag: str = "history") -> None:
    """With `flag` off no response is stored, so none is continued (as `refuse_continuing` for chat)."""
    if previous_id is not None:
        raise HistoryOff(
            f"this person's {flag!r} consent is off (PATCH /v1/me/consent), so no response is stored or "
            "continued: omit previous_response_id and send the earlier items in input",
            param="previous_response_id",
        )


def export(store: SqlStore, who: Subject, now: float | None = None) -> dict[str, Any]:
    """Everything held about `who`: stored consent flags by person (empty: defaults apply), conversations
    with their messages (and their parts), stored images (base64, `media`), stored responses (Responses API)
    with their input and output, for an owner its API keys without hashes, and their shopping data (events,
    posts, friendships, and the posts shared with them by name)."""
    held = store.export_person(who.person, tenant=who.tenant)
    held["responses"] = ResponseStore(store.db).export_person(who.person, tenant=who.tenant)
    held["memories"] = MemoryStore(store.db).export_person(who.person, tenant=who.tenant)
    held["media"] = MediaStore(store.db).export_person(who.person, tenant=who.tenant)
    held |= ShoppingData(store.db).export_person(who.person, tenant=who.tenant)
    return {
        "object": "person.export",
        "id": who.person.label,
        "exported_at": int(time.time() if now is None else now),
        **held,
    }


def forget(store: SqlStore, who: Subject) -> dict[str, Any]:
    """Hard-delete `who` from every table; the counts say what went."""
    removed = ShoppingData(store.db).delete_person(who.person, tenant=who.tenant)
    removed["responses"] = ResponseStore(store.db).delete_person(who.person, tenant=who.tenant)
    removed["memories"] = MemoryStore(store.db).delete_person(who.person, tenant=who.tenant)
    removed = store.delete_person(who.person, tenant=who.tenant) | removed
    store.checkpoint()
    log.info("erased a person on request: %s", ", ".join(f"{n} {table}" for table, n in removed.items()))
    return {"object": "person.deleted", "id": who.person.label, "deleted": True, "removed": removed}


@dataclass(frozen=True)
class Purged:
    conversations: int = 0
    messages: int = 0
    cutoff: float | None = None  # epoch seconds; None when no retention period is set
    responses: int = 0  # stored responses (Responses API) created before the cutoff


def purge_expired(store: SqlStore, settings: Settings, now: float | None = None) -> Purged:
    """Delete conversations (with their messages) last updated, and stored responses created, more than
    `retention_days` before `now`."""
    if settings.retention_days is None:
        return Purged()
    cutoff = (time.time() if now is None else now) - settings.retention_days * DAY_S
    conversations, messages = store.purge_before(cutoff)
    responses = ResponseStore(store.db).purge_before(cutoff)
    if conversations or responses:
        log.info("retention: purged %d conversations (%d messages), %d responses", conversations, messages, responses)
    return Purged(conversations, messages, cutoff, responses)


async def keep_purging(store: SqlStore, settings: Settings, every_s: float = PURGE_EVERY_S) -> None:
    """Purge now, then every `every_s` seconds until cancelled (for the app's lifespan). Returns at once
    when no retention period is set; a failed purge is logged and retried next time."""
    if settings.retention_days is None:
        return
    while True:
        try:
            await anyio.to_thread.run_sync(purge_expired, store, settings)
        except SQLAlchemyError as exc:
            log.warning("retention purge failed (%s); retrying in %.0fs", type(exc).__name__, every_s)
        await anyio.sleep(every_s)
