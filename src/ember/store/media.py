"""Stored images, read back and let go: one person's image fetched through a conversation of theirs that
names it, a conversation's or a person's images for an export (base64), and all of a person's images
deleted when they turn `media_storage` off. Writing them with their turns, and dropping them with the turns
that name them, is `ember.store.parts`'s; whether to keep them is `ember.policy.privacy`'s.

An image belongs to one person (`tenant`, `person`, compared exactly, as everywhere in the store): reaching
it through another person's conversation, or one that does not name it, is NotFound, exactly as for an
image never stored.
"""

from __future__ import annotations

import base64
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, delete, select, update

from ember.errors import NotFound, shown
from ember.store.parts import CONSENT_OFF
from ember.store.schema import conversations, media, message_parts
from ember.store.sql import owned_by
from ember.types import Person


@dataclass(frozen=True)
class StoredImage:
    mime: str
    data: bytes


class MediaStore:
    """The `media` table on the store's database; methods are synchronous (async callers use a thread)."""

    def __init__(self, db: Engine) -> None:
        self.db = db

    def image(
        self, conversation_id: str, sha256: str, person: Person, modes: Collection[str] | None = None
    ) -> StoredImage:
        """`person`'s stored image `sha256`, named by a turn of their conversation `conversation_id` (held
        with one of `modes`, if given); NotFound otherwise."""
        query = select(media.c.mime, media.c.data).where(
            *owned_by(media, person), media.c.sha256 == sha256, _names(conversation_id, person, modes)
        )
        with self.db.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"image {shown(sha256)} not found in conversation {shown(conversation_id)}", param="sha256")
        return StoredImage(row.mime, row.data)

    def of_conversation(self, conversation_id: str, person: Person) -> list[dict[str, Any]]:
        """The stored images `person`'s conversation names, for its export (base64)."""
        query = (
            select(media)
            .where(*owned_by(media, person), _names(conversation_id, person))
            .order_by(media.c.created_at, media.c.sha256)
        )
        with self.db.connect() as conn:
            return [_exported(row._mapping) for row in conn.execute(query)]

    def export_person(self, person: Person, *, tenant: bool) -> list[dict[str, Any]]:
        """The person's (with `tenant`, everyone's in their tenant) stored images (base64), oldest first."""
        query = select(media).where(*owned_by(media, person, whole=tenant)).order_by(media.c.created_at, media.c.sha256)
        with self.db.connect() as conn:
            return [_exported(row._mapping) for row in conn.execute(query)]

    def forget(self, person: Person) -> int:
        """Delete every image stored for `person` (their `media_storage` consent went off); their turns keep
        the images' descriptions and say the image is not stored any more. How many went."""
        theirs = select(conversations.c.id).where(*owned_by(conversations, person, "user_id"))
        with self.db.begin() as conn:
            conn.execute(
                update(message_parts)
                .where(message_parts.c.conversation_id.in_(theirs), message_parts.c.kind == "image")
                .where(message_parts.c.not_kept.is_(None))
                .values(not_kept=CONSENT_OFF)
            )
            return int(conn.execute(delete(media).where(*owned_by(media, person))).rowcount)


def _names(conversation_id: str, person: Person, modes: Collection[str] | None = None) -> ColumnElement[bool]:
    """That `person`'s conversation `conversation_id` (held with one of `modes`) has a turn naming the media
    row's image."""
    query = (
        select(message_parts.c.sha256)
        .select_from(message_parts.join(conversations, conversations.c.id == message_parts.c.conversation_id))
        .where(
            conversations.c.id == conversation_id,
            *owned_by(conversations, person, "user_id"),
            message_parts.c.sha256 == media.c.sha256,
        )
    )
    if modes is not None:
        query = query.where(conversations.c.mode.in_(list(modes)))
    return query.exists()


def _exported(row: Any) -> dict[str, Any]:
    return {
        "user": Person(row["tenant"], row["person"]).label,
        "sha256": row["sha256"],
        "mime": row["mime"],
        "width": row["width"],
        "height": row["height"],
        "bytes": len(row["data"]),
        "created_at": int(row["created_at"]),
        "data": base64.b64encode(row["data"]).decode("ascii"),
    }
