"""The shopping tables on the SQL store (SQLAlchemy Core: one code path for SQLite and Postgres): write
validated records, read what the recommender and the shopping mode need, and export or erase a person.

Every row that names people belongs to one tenant (`ember.types.Person`), and records are written into
the tenant of whoever sends them: names in them are names within it. Who may see a post is decided here,
in SQL, so that no caller can forget it: only people of the post's tenant, and of those the author;
everyone for `public`; the author's friends for `friends`; the named people for `people`. Persons are
compared by exact equality of tenant and name. Behaviour is read for training only from people whose
`personalisation` consent is on. This module does not rank, embed or decide consent defaults.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, delete, exists, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from ember.shopping.ingest import EventIn, FriendshipIn, ItemIn, PostIn, RowError
from ember.store.schema import catalog_items, consent, events, friendships, post_audience, post_items, posts
from ember.store.sql import owned_by
from ember.types import Person

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
    person: Person
    item_id: str
    kind: str
    value: float | None
    ts: float


@dataclass(frozen=True)
class Post:
    id: str
    author: Person
    text: str
    audience: str
    created_at: float
    items: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "post",
            "author": self.author.label,
            "text": self.text,
            "audience": self.audience,
            "items": list(self.items),
            "created_at": int(self.created_at),
        }


def visible_to(viewer: Person) -> ColumnElement[bool]:
    """The condition on `posts` rows that `viewer` may see."""
    mine = (friendships.c.tenant == posts.c.tenant) & (friendships.c.person == posts.c.author)
    friend = exists().where(mine, friendships.c.friend == viewer.name)
    named = exists().where(
        post_audience.c.tenant == posts.c.tenant,
        post_audience.c.post_id == posts.c.id,
        post_audience.c.person == viewer.name,
    )
    return (posts.c.tenant == viewer.tenant) & or_(
        posts.c.author == viewer.name,
        posts.c.audience == "public",
        (posts.c.audience == "friends") & friend,
        (posts.c.audience == "people") & named,
    )


class ShoppingData:
    """Reads and writes the shopping tables on `db` (the store's database)."""

    def __init__(self, db: Engine) -> None:
        self.db = db
        self._insert = postgresql.insert if db.dialect.name == "postgresql" else sqlite.insert

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
        with self.db.begin() as conn:
            for start in range(0, len(rows), CHUNK):
                conn.execute(stmt, rows[start : start + CHUNK])
        return len(rows)

    def known_items(self, ids: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(ids))
        found: set[str] = set()
        with self.db.connect() as conn:
            for start in range(0, len(wanted), CHUNK):
                chunk = wanted[start : start + CHUNK]
                found.update(conn.scalars(select(catalog_items.c.id).where(catalog_items.c.id.in_(chunk))))
        return found

    def add_events(self, tenant: str, batch: Sequence[tuple[int, EventIn]]) -> tuple[int, list[RowError]]:
        """Store `tenant`'s events whose item exists; the others are row errors."""
        known = self.known_items(e.item for _, e in batch)
        missing = [RowError(where, f"item: no catalogue item {e.item!r}") for where, e in batch if e.item not in known]
        rows = [
            {"tenant": tenant, "person": e.user, "item_id": e.item, "kind": e.type, "value": e.value, "ts": e.ts}
            for _, e in batch
            if e.item in known
        ]
        with self.db.begin() as conn:
            for start in range(0, len(rows), CHUNK):
                conn.execute(events.insert(), rows[start : start + CHUNK])
        return len(rows), missing

    def add_posts(self, tenant: str, batch: Sequence[tuple[int, PostIn]]) -> tuple[int, list[RowError]]:
        """Store `tenant`'s posts whose linked items all exist and whose id is new in that tenant (ids are
        per tenant: another's are neither revealed nor blocked); the others are row errors."""
        known = self.known_items(i for _, p in batch for i in p.items)
        ours = posts.c.tenant == tenant
        with self.db.connect() as conn:
            taken = set(conn.scalars(select(posts.c.id).where(ours, posts.c.id.in_([p.id for _, p in batch]))))
        errors, stored = [], 0
        with self.db.begin() as conn:
            for where, post in batch:
                unknown = [i for i in post.items if i not in known]
                if unknown or post.id in taken:
                    why = f"id: post {post.id!r} exists" if post.id in taken else f"items: unknown {unknown}"
                    errors.append(RowError(where, why))
                    continue
                taken.add(post.id)
                conn.execute(
                    posts.insert().values(
                        tenant=tenant,
                        **post.model_dump(include={"id", "author", "text", "audience"}),
                        created_at=post.created_at,
                    )
                )
                for item in dict.fromkeys(post.items):
                    conn.execute(post_items.insert().values(tenant=tenant, post_id=post.id, item_id=item))
                for person in dict.fromkeys(post.people):
                    conn.execute(post_audience.insert().values(tenant=tenant, post_id=post.id, person=person))
                stored += 1
        return stored, errors

    def add_friendships(self, tenant: str, pairs: Sequence[FriendshipIn]) -> int:
        """Record friendships in `tenant` both ways; pairs already known are kept as they are."""
        now = time.time()
        rows = {(p.user, p.friend) for p in pairs} | {(p.friend, p.user) for p in pairs}
        stmt = self._insert(friendships).on_conflict_do_nothing(index_elements=["tenant", "person", "friend"])
        values = [{"tenant": tenant, "person": a, "friend": b, "created_at": now} for a, b in sorted(rows)]
        with self.db.begin() as conn:
            for start in range(0, len(values), CHUNK):
                conn.execute(stmt, values[start : start + CHUNK])
        return len(pairs)

    def set_embeddings(self, vectors: dict[str, bytes]) -> None:
        with self.db.begin() as conn:
            for item_id, blob in vectors.items():
                conn.execute(update(catalog_items).where(catalog_items.c.id == item_id).values(embedding=blob))

    # --- reading --------------------------------------------------------------------------------------------

    def items(self) -> list[Item]:
        with self.db.connect() as conn:
            rows = conn.execute(select(catalog_items).order_by(catalog_items.c.id))
            return [_item(row._mapping) for row in rows]

    def item(self, item_id: str) -> Item | None:
        with self.db.connect() as conn:
            row = conn.execute(select(catalog_items).where(catalog_items.c.id == item_id)).first()
        return None if row is None else _item(row._mapping)

    def version(self) -> tuple[Any, ...]:
        """Changes whenever the catalogue, the events or anyone's consent change (cheap: aggregates only)."""
        with self.db.connect() as conn:
            ev = conn.execute(select(func.count(), func.max(events.c.id))).one()
            it = conn.execute(select(func.count(), func.max(catalog_items.c.updated_at))).one()
            co = conn.execute(select(func.count(), func.max(consent.c.updated_at))).one()
        return (*ev, *it, *co)

    def training_events(self, limit: int) -> list[Event]:
        """The latest `limit` events of the people whose `personalisation` consent is on, oldest first."""
        agreed = select(consent.c.tenant, consent.c.person).where(consent.c.personalisation.is_(True))
        query = (
            select(events.c.tenant, events.c.person, events.c.item_id, events.c.kind, events.c.value, events.c.ts)
            .where(tuple_(events.c.tenant, events.c.person).in_(agreed))
            .order_by(events.c.ts.desc(), events.c.id.desc())
            .limit(limit)
        )
        with self.db.connect() as conn:
            return [_event(row) for row in reversed(conn.execute(query).all())]

    def person_events(self, person: Person, limit: int = PERSON_EVENTS) -> list[Event]:
        """The person's most recent events, oldest first (consent is the caller's check)."""
        query = (
            select(events.c.tenant, events.c.person, events.c.item_id, events.c.kind, events.c.value, events.c.ts)
            .where(*owned_by(events, person))
            .order_by(events.c.ts.desc(), events.c.id.desc())
            .limit(limit)
        )
        with self.db.connect() as conn:
            return [_event(row) for row in reversed(conn.execute(query).all())]

    def visible_posts(self, viewer: Person, item_ids: Sequence[str], limit: int) -> list[Post]:
        """Newest posts that link one of `item_ids` and that `viewer` may see."""
        linked = select(post_items.c.post_id).where(
            post_items.c.tenant == viewer.tenant, post_items.c.item_id.in_(list(item_ids))
        )
        query = (
            select(posts).where(posts.c.id.in_(linked), visible_to(viewer)).order_by(posts.c.created_at.desc())
        ).limit(limit)
        with self.db.connect() as conn:
            return [_post(conn, row._mapping) for row in conn.execute(query)]

    def post(self, post_id: str, viewer: Person) -> Post | None:
        with self.db.connect() as conn:
            row = conn.execute(select(posts).where(posts.c.id == post_id, visible_to(viewer))).first()
            return None if row is None else _post(conn, row._mapping)

    # --- privacy --------------------------------------------------------------------------------------------

    def export_person(self, person: Person, *, tenant: bool) -> dict[str, Any]:
        """The person's (with `tenant`, everyone's in their tenant) events, the posts they wrote, the
        friendships they are in and the posts that name them."""
        with self.db.connect() as conn:
            evs = conn.execute(
                select(events).where(*owned_by(events, person, whole=tenant)).order_by(events.c.ts, events.c.id)
            )
            own = conn.execute(select(posts).where(*owned_by(posts, person, "author", whole=tenant)))
            friends = conn.execute(
                select(friendships)
                .where(*owned_by(friendships, person, whole=tenant))
                .order_by(friendships.c.person, friendships.c.friend)
            )
            named = conn.execute(select(post_audience.c.post_id).where(*owned_by(post_audience, person, whole=tenant)))
            return {
                "events": [_event_json(row._mapping) for row in evs],
                "posts": [_post(conn, row._mapping).as_dict() for row in own],
                "friendships": [
                    {"user": Person(r.tenant, r.person).label, "friend": Person(r.tenant, r.friend).label}
                    for r in friends
                ],
                "named_in_posts": sorted(set(named.scalars())),
            }

    def delete_person(self, person: Person, *, tenant: bool) -> dict[str, int]:
        """Hard-delete the person's (with `tenant`, everyone's in their tenant) events, posts (with their
        links), friendships (both directions) and mentions in posts' audiences, in one transaction; rows
        deleted per table."""
        with self.db.begin() as conn:
            return _delete(conn, person, tenant)


def _delete(conn: Connection, person: Person, whole: bool) -> dict[str, int]:
    authored = owned_by(posts, person, "author", whole=whole)
    of_authored = exists().where(posts.c.tenant == post_items.c.tenant, posts.c.id == post_items.c.post_id, *authored)
    gone_links = conn.execute(delete(post_items).where(of_authored)).rowcount
    names_them = and_(*owned_by(post_audience, person, whole=whole))
    audience_of_authored = exists().where(
        posts.c.tenant == post_audience.c.tenant, posts.c.id == post_audience.c.post_id, *authored
    )
    gone_named = conn.execute(delete(post_audience).where(or_(audience_of_authored, names_them))).rowcount
    befriended = and_(friendships.c.tenant == person.tenant, friendships.c.friend == person.name)
    return {
        "events": conn.execute(delete(events).where(*owned_by(events, person, whole=whole))).rowcount,
        "posts": conn.execute(delete(posts).where(*authored)).rowcount,
        "post_links": gone_links + gone_named,
        "friendships": conn.execute(
            delete(friendships).where(or_(and_(*owned_by(friendships, person, whole=whole)), befriended))
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


def _event(row: Any) -> Event:
    return Event(Person(row.tenant, row.person), row.item_id, row.kind, row.value, row.ts)


def _post(conn: Connection, row: Any) -> Post:
    linked = conn.scalars(
        select(post_items.c.item_id)
        .where(post_items.c.tenant == row["tenant"], post_items.c.post_id == row["id"])
        .order_by(post_items.c.item_id)
    )
    author = Person(row["tenant"], row["author"])
    return Post(row["id"], author, row["text"], row["audience"], float(row["created_at"]), tuple(linked))


def _event_json(row: Any) -> dict[str, Any]:
    out = {
        "user": Person(row["tenant"], row["person"]).label,
        "item": row["item_id"],
        "type": row["kind"],
        "timestamp": row["ts"],
    }
    if row["value"] is not None:
        out["value"] = row["value"]
    return out
