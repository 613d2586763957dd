"""The shopping tables on the SQL store (SQLAlchemy Core: one code path for SQLite and Postgres): write
validated records, read what the recommender and the shopping mode need, and export or erase a person.

Who may see a post is decided here, in SQL, so that no caller can forget it: the author; everyone in the
author's namespace for `public`; the author's friends for `friends`; the named people for `people`. A
namespace is the part of a person's name before the first `/` (a key's people, `owner/...`), or none for
names without one. Behaviour is read for training only from people whose `personalisation` consent is on.
This module does not rank, embed or decide consent defaults.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ember.shopping.ingest import EventIn, FriendshipIn, ItemIn, PostIn, RowError
from ember.store.schema import catalog_items, consent, events, friendships, post_audience, post_items, posts

CHUNK = 5_000  # rows per INSERT (SQLite allows 32,766 bound parameters)
PERSON_EVENTS = 500  # the most recent events of a person that shape their profile


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    description: str
    category: str
    price: float
    currency: str
    attributes: dict[str, Any]
    embedding: bytes | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "catalog.item",
            "title": self.title,
            "description": self.description,
            "category": self.category,
            "price": self.price,
            "currency": self.currency,
            "attributes": self.attributes,
        }


@dataclass(frozen=True)
class Event:
    person: str
    item_id: str
    kind: str
    value: float | None
    ts: float


@dataclass(frozen=True)
class Post:
    id: str
    author: str
    text: str
    audience: str
    created_at: float
    items: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "post",
            "author": self.author,
            "text": self.text,
            "audience": self.audience,
            "items": list(self.items),
            "created_at": int(self.created_at),
        }


def namespace_of(person: str) -> str:
    """`owner` for `owner/...`, '' for a name without '/'."""
    return person.split("/", 1)[0] if "/" in person else ""


def _same_namespace(column: ColumnElement[str], viewer: str) -> ColumnElement[bool]:
    ns = namespace_of(viewer)
    if ns:
        return column.startswith(ns + "/", autoescape=True)
    return ~column.contains("/", autoescape=True)


def _whose(column: ColumnElement[str], person: str, namespace: bool) -> ColumnElement[bool]:
    if not namespace:
        return column == person
    return or_(column == person, column.startswith(person + "/", autoescape=True))


def visible_to(viewer: str) -> ColumnElement[bool]:
    """The condition on `posts` rows that `viewer` may see."""
    friend = exists().where(friendships.c.person == posts.c.author, friendships.c.friend == viewer)
    named = exists().where(post_audience.c.post_id == posts.c.id, post_audience.c.person == viewer)
    return or_(
        posts.c.author == viewer,
        (posts.c.audience == "public") & _same_namespace(posts.c.author, viewer),
        (posts.c.audience == "friends") & friend,
        (posts.c.audience == "people") & named,
    )


class ShoppingData:
    """Reads and writes the shopping tables on `engine` (the store's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    # --- writing --------------------------------------------------------------------------------------------

    def upsert_items(self, items: Sequence[ItemIn]) -> int:
        """Insert or replace catalogue items (a changed item's embedding is recomputed later)."""
        now = time.time()
        rows = [{**i.model_dump(), "attributes": json.dumps(i.attributes), "updated_at": now} for i in items]
        stmt = self._insert(catalog_items)
        changed = {c: stmt.excluded[c] for c in ("title", "description", "category", "price", "currency")}
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={**changed, "attributes": stmt.excluded.attributes, "embedding": None, "updated_at": now},
        )
        with self.engine.begin() as conn:
            for start in range(0, len(rows), CHUNK):
                conn.execute(stmt, rows[start : start + CHUNK])
        return len(rows)

    def known_items(self, ids: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(ids))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), CHUNK):
                chunk = wanted[start : start + CHUNK]
                found.update(conn.scalars(select(catalog_items.c.id).where(catalog_items.c.id.in_(chunk))))
        return found

    def add_events(self, batch: Sequence[tuple[int, EventIn]]) -> tuple[int, list[RowError]]:
        """Store the events whose item exists; the others are row errors."""
        known = self.known_items(e.item for _, e in batch)
        missing = [RowError(where, f"item: no catalogue item {e.item!r}") for where, e in batch if e.item not in known]
        rows = [
            {"person": e.user, "item_id": e.item, "kind": e.type, "value": e.value, "ts": e.ts}
            for _, e in batch
            if e.item in known
        ]
        with self.engine.begin() as conn:
            for start in range(0, len(rows), CHUNK):
                conn.execute(events.insert(), rows[start : start + CHUNK])
        return len(rows), missing

    def add_posts(self, batch: Sequence[tuple[int, PostIn]]) -> tuple[int, list[RowError]]:
        """Store posts whose linked items all exist and whose id is new; the others are row errors."""
        known = self.known_items(i for _, p in batch for i in p.items)
        with self.engine.connect() as conn:
            taken = set(conn.scalars(select(posts.c.id).where(posts.c.id.in_([p.id for _, p in batch]))))
        errors, stored = [], 0
        with self.engine.begin() as conn:
            for where, post in batch:
                unknown = [i for i in post.items if i not in known]
                if unknown or post.id in taken:
                    why = f"id: post {post.id!r} exists" if post.id in taken else f"items: unknown {unknown}"
                    errors.append(RowError(where, why))
                    continue
                taken.add(post.id)
                conn.execute(
                    posts.insert().values(
                        **post.model_dump(include={"id", "author", "text", "audience"}), created_at=post.created_at
                    )
                )
                for item in dict.fromkeys(post.items):
                    conn.execute(post_items.insert().values(post_id=post.id, item_id=item))
                for person in dict.fromkeys(post.people):
                    conn.execute(post_audience.insert().values(post_id=post.id, person=person))
                stored += 1
        return stored, errors

    def add_friendships(self, pairs: Sequence[FriendshipIn]) -> int:
        """Record friendships both ways; pairs already known are kept as they are."""
        now = time.time()
        rows = {(p.user, p.friend) for p in pairs} | {(p.friend, p.user) for p in pairs}
        stmt = self._insert(friendships).on_conflict_do_nothing(index_elements=["person", "friend"])
        values = [{"person": a, "friend": b, "created_at": now} for a, b in sorted(rows)]
        with self.engine.begin() as conn:
            for start in range(0, len(values), CHUNK):
                conn.execute(stmt, values[start : start + CHUNK])
        return len(pairs)

    def set_embeddings(self, vectors: dict[str, bytes]) -> None:
        with self.engine.begin() as conn:
            for item_id, blob in vectors.items():
                conn.execute(update(catalog_items).where(catalog_items.c.id == item_id).values(embedding=blob))

    # --- reading --------------------------------------------------------------------------------------------

    def items(self) -> list[Item]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(catalog_items).order_by(catalog_items.c.id))
            return [_item(row._mapping) for row in rows]

    def item(self, item_id: str) -> Item | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(catalog_items).where(catalog_items.c.id == item_id)).first()
        return None if row is None else _item(row._mapping)

    def version(self) -> tuple[Any, ...]:
        """Changes whenever the catalogue, the events or anyone's consent change (cheap: aggregates only)."""
        with self.engine.connect() as conn:
            ev = conn.execute(select(func.count(), func.max(events.c.id))).one()
            it = conn.execute(select(func.count(), func.max(catalog_items.c.updated_at))).one()
            co = conn.execute(select(func.count(), func.max(consent.c.updated_at))).one()
        return (*ev, *it, *co)

    def training_events(self, limit: int) -> list[Event]:
        """The latest `limit` events of the people whose `personalisation` consent is on, oldest first."""
        agreed = select(consent.c.person).where(consent.c.personalisation.is_(True))
        query = (
            select(events.c.person, events.c.item_id, events.c.kind, events.c.value, events.c.ts)
            .where(events.c.person.in_(agreed))
            .order_by(events.c.ts.desc(), events.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [Event(*row) for row in reversed(conn.execute(query).all())]

    def person_events(self, person: str, limit: int = PERSON_EVENTS) -> list[Event]:
        """The person's most recent events, oldest first (consent is the caller's check)."""
        query = (
            select(events.c.person, events.c.item_id, events.c.kind, events.c.value, events.c.ts)
            .where(events.c.person == person)
            .order_by(events.c.ts.desc(), events.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [Event(*row) for row in reversed(conn.execute(query).all())]

    def visible_posts(self, viewer: str, item_ids: Sequence[str], limit: int) -> list[Post]:
        """Newest posts that link one of `item_ids` and that `viewer` may see."""
        linked = select(post_items.c.post_id).where(post_items.c.item_id.in_(list(item_ids)))
        query = (
            select(posts).where(posts.c.id.in_(linked), visible_to(viewer)).order_by(posts.c.created_at.desc())
        ).limit(limit)
        with self.engine.connect() as conn:
            return [_post(conn, row._mapping) for row in conn.execute(query)]

    def post(self, post_id: str, viewer: str) -> Post | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(posts).where(posts.c.id == post_id, visible_to(viewer))).first()
            return None if row is None else _post(conn, row._mapping)

    # --- privacy --------------------------------------------------------------------------------------------

    def export_person(self, person: str, *, namespace: bool) -> dict[str, Any]:
        """The person's events, the posts they wrote, the friendships they are in and the posts that name them."""
        with self.engine.connect() as conn:
            evs = conn.execute(
                select(events).where(_whose(events.c.person, person, namespace)).order_by(events.c.ts, events.c.id)
            )
            own = conn.execute(select(posts).where(_whose(posts.c.author, person, namespace)))
            friends = conn.execute(
                select(friendships)
                .where(_whose(friendships.c.person, person, namespace))
                .order_by(friendships.c.friend)
            )
            named = conn.execute(
                select(post_audience.c.post_id).where(_whose(post_audience.c.person, person, namespace))
            )
            return {
                "events": [_event_json(row._mapping) for row in evs],
                "posts": [_post(conn, row._mapping).as_dict() for row in own],
                "friendships": [{"user": r.person, "friend": r.friend} for r in friends],
                "named_in_posts": sorted(set(named.scalars())),
            }

    def delete_person(self, person: str, *, namespace: bool) -> dict[str, int]:
        """Hard-delete the person's events, posts (with their links), friendships (both directions) and
        mentions in posts' audiences, in one transaction; rows deleted per table."""
        authored = select(posts.c.id).where(_whose(posts.c.author, person, namespace))
        with self.engine.begin() as conn:
            return _delete(conn, person, namespace, authored)


def _delete(conn: Connection, person: str, namespace: bool, authored: Any) -> dict[str, int]:
    gone_links = conn.execute(delete(post_items).where(post_items.c.post_id.in_(authored))).rowcount
    gone_named = conn.execute(
        delete(post_audience).where(
            or_(post_audience.c.post_id.in_(authored), _whose(post_audience.c.person, person, namespace))
        )
    ).rowcount
    return {
        "events": conn.execute(delete(events).where(_whose(events.c.person, person, namespace))).rowcount,
        "posts": conn.execute(delete(posts).where(_whose(posts.c.author, person, namespace))).rowcount,
        "post_links": gone_links + gone_named,
        "friendships": conn.execute(
            delete(friendships).where(
                or_(_whose(friendships.c.person, person, namespace), _whose(friendships.c.friend, person, namespace))
            )
        ).rowcount,
    }


def _item(row: Any) -> Item:
    return Item(
        row["id"],
        row["title"],
        row["description"],
        row["category"],
        float(row["price"]),
        row["currency"],
        json.loads(row["attributes"]),
        row["embedding"],
    )


def _post(conn: Connection, row: Any) -> Post:
    linked = conn.scalars(
        select(post_items.c.item_id).where(post_items.c.post_id == row["id"]).order_by(post_items.c.item_id)
    )
    return Post(row["id"], row["author"], row["text"], row["audience"], float(row["created_at"]), tuple(linked))


def _event_json(row: Any) -> dict[str, Any]:
    out = {"user": row["person"], "item": row["item_id"], "type": row["kind"], "timestamp": row["ts"]}
    if row["value"] is not None:
        out["value"] = row["value"]
    return out
