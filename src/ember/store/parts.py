"""A stored user turn's parts beyond its text, written in the exchange's transaction and read with its
conversation: each image (its sha256, type, size; its description stays in `messages.descriptions`) and each
audio clip (transcript, language, seconds) is a `message_parts` row; and, when the caller keeps them, the
images themselves are `media` rows, one per distinct image (sha256) per person, however often it was sent.

Images are blobs in the database, not files under the data dir: they are written in the same transaction as
the turn that names them and deleted in the same one as the turn, so a stored turn never names a lost image
and an erasure leaves no file behind; replicas on one Postgres share them with no shared disk; and on SQLite
`secure_delete` and the erasure's checkpoint overwrite them as they do text.

Whether images are kept is the caller's decision (`Keeping`); this module writes, reads and drops rows. It
works on a caller's connection and does not import `ember.store.sql`, which uses it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from ember.store.schema import conversations, media, message_parts
from ember.types import Image, Message, Person

TOO_LARGE = "too_large"  # larger than the cap (`EMBER_MEDIA_MAX_BYTES`)
CONSENT_OFF = "media_storage_off"  # the person's `media_storage` consent was off (or was turned off since)


@dataclass(frozen=True)
class Keeping:
    """Whether a stored exchange keeps its images (the person's `media_storage` consent), and the largest
    (bytes, as intake decoded it) it keeps."""

    images: bool = False
    max_bytes: int = 0

    def refusal(self, image: Image) -> str | None:
        """Why `image` is not kept (None: it is)."""
        if not self.images:
            return CONSENT_OFF
        return TOO_LARGE if len(image.data) > self.max_bytes else None


NOTHING_KEPT = Keeping()


def write(
    conn: Connection, owner: Person, conversation_id: str, first_seq: int, turns: list[Message], keeping: Keeping
) -> None:
    """The parts rows of `turns` (stored from `first_seq` on) and, as `keeping` says, their images."""
    rows: list[dict[str, Any]] = []
    kept: dict[str, Image] = {}
    for seq, message in enumerate(turns, start=first_seq):
        where = {"conversation_id": conversation_id, "seq": seq}
        for part, image in enumerate(message.images):
            refusal = keeping.refusal(image)
            rows.append({**where, **_image_row(image, refusal), "part": part})
            if refusal is None:
                kept[image.sha256] = image
        for part, heard in enumerate(message.heard, start=len(message.images)):
            audio = {"transcript": heard.text, "language": heard.language, "duration": heard.duration}
            rows.append({**where, **_blank(), **audio, "part": part, "kind": "audio"})
    if rows:
        conn.execute(message_parts.insert(), rows)
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    for image in kept.values():
        row: dict[str, Any] = {"tenant": owner.tenant, "person": owner.name, "sha256": image.sha256}
        row |= {"mime": image.mime, "width": image.width, "height": image.height, "data": image.data}
        conn.execute(insert(media).values(**row, created_at=time.time()).on_conflict_do_nothing())  # one a person


def _blank() -> dict[str, Any]:
    return {c.name: None for c in message_parts.c if c.name not in ("conversation_id", "seq", "part", "kind")}


def _image_row(image: Image, refusal: str | None) -> dict[str, Any]:
    return {
        **_blank(),
        "kind": "image",
        "sha256": image.sha256,
        "mime": image.mime,
        "width": image.width,
        "height": image.height,
        "bytes": len(image.data),
        "not_kept": refusal,
    }


def read(conn: Connection, conversation_id: str, owner: Person) -> dict[int, list[dict[str, Any]]]:
    """The conversation's parts by message seq, as the conversations API shows them (an image's
    `description` left to the caller): an image is `stored` while its owner's media row holds it."""
    held = (media.c.sha256 == message_parts.c.sha256) & (media.c.tenant == owner.tenant)
    query = (
        select(message_parts, media.c.sha256.label("held"))
        .select_from(message_parts.outerjoin(media, held & (media.c.person == owner.name)))
        .where(message_parts.c.conversation_id == conversation_id)
        .order_by(message_parts.c.seq, message_parts.c.part)
    )
    out: dict[int, list[dict[str, Any]]] = {}
    for row in conn.execute(query):
        out.setdefault(row.seq, []).append(_shown(row._mapping, conversation_id))
    return out


def _shown(row: Any, conversation_id: str) -> dict[str, Any]:
    if row["kind"] == "audio":
        return {"type": "audio", **{k: row[k] for k in ("transcript", "language", "duration")}}
    shown = {k: row[k] for k in ("sha256", "mime", "width", "height", "bytes")}
    if row["held"] is not None:
        return {"type": "image", **shown, "stored": True, "url": media_url(conversation_id, row["sha256"])}
    return {"type": "image", **shown, "stored": False, "not_stored": row["not_kept"] or CONSENT_OFF}


def media_url(conversation_id: str, sha256: str) -> str:
    """Where a stored image of a conversation is fetched (with the same key and `user` as the conversation)."""
    return f"/v1/conversations/{conversation_id}/media/{sha256}"


def with_descriptions(parts: list[dict[str, Any]], descriptions: list[str]) -> list[dict[str, Any]]:
    """`parts` with each image's description (the turn's descriptions are its images', in order; None where
    the image readers made none)."""
    images = iter(descriptions)
    return [{**p, "description": next(images, None)} if p["type"] == "image" else p for p in parts]


def drop_unnamed(conn: Connection, *where: ColumnElement[bool]) -> int:
    """Delete the stored images (of the media rows matching `where`) that no stored part of their person's
    conversations names any more; how many went."""
    same_person = (conversations.c.tenant == media.c.tenant) & (conversations.c.user_id == media.c.person)
    named = (
        select(message_parts.c.sha256)
        .select_from(message_parts.join(conversations, conversations.c.id == message_parts.c.conversation_id))
        .where(message_parts.c.sha256 == media.c.sha256, same_person)
    )
    return int(conn.execute(delete(media).where(*where, ~named.exists())).rowcount)


def drop_parts(conn: Connection, conversation_ids: Any) -> int:
    """Delete the parts rows of the conversations `conversation_ids` (a list or a subquery of ids)."""
    of = message_parts.c.conversation_id.in_(conversation_ids)
    return int(conn.execute(delete(message_parts).where(of)).rowcount)
