"""Append-only, named migrations. Never edit one that has shipped: add the next.

Each migration defines the DDL it needs inline (not from `schema.py`, which describes the latest
state), runs in its own transaction, and is recorded in `_migrations`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
    text,
)

Migration = Callable[[Connection], None]

_ledger = Table(
    "_migrations",
    MetaData(),
    Column("name", String(128), primary_key=True),
    Column("applied_at", Float, nullable=False),
)


def m0001_conversations(conn: Connection) -> None:
    md = MetaData()
    Table(
        "conversations",
        md,
        Column("id", String(64), primary_key=True),
        Column("user_id", String(256), nullable=False),
        Column("mode", String(64), nullable=False),
        Column("title", Text, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
        Index("ix_conversations_user_updated", "user_id", "updated_at"),
    )
    Table(
        "messages",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("conversation_id", String(64), ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
        Column("seq", Integer, nullable=False),
        Column("role", String(16), nullable=False),
        Column("content", Text, nullable=False),
        Column("reasoning", Text),
        Column("finish_reason", String(32)),
        Column("prompt_tokens", Integer),
        Column("completion_tokens", Integer),
        Column("created_at", Float, nullable=False),
        UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),
    )
    md.create_all(conn)


def m0002_api_keys(conn: Connection) -> None:
    md = MetaData()
    Table(
        "api_keys",
        md,
        Column("id", String(32), primary_key=True),
        Column("hash", String(64), nullable=False, unique=True),
        Column("prefix", String(16), nullable=False),
        Column("owner", String(256), nullable=False, index=True),
        Column("scopes", String(256), nullable=False),
        Column("tier", String(64), nullable=False),
        Column("name", String(256), nullable=False),
        Column("created_at", Float, nullable=False),
        Column("revoked_at", Float),
    )
    md.create_all(conn)


def m0003_consent(conn: Connection) -> None:
    md = MetaData()
    Table(
        "consent",
        md,
        Column("person", String(256), primary_key=True),
        Column("history", Boolean, nullable=False),
        Column("personalisation", Boolean, nullable=False),
        Column("health_storage", Boolean, nullable=False),
        Column("updated_at", Float, nullable=False),
    )
    md.create_all(conn)


def m0004_shopping(conn: Connection) -> None:
    """The catalogue, behaviour events, shared posts (with their linked items and named audience) and
    friendships (one row per direction)."""
    md = MetaData()
    _catalogue_and_events(md)
    _posts_and_friends(md)
    md.create_all(conn)


def _catalogue_and_events(md: MetaData) -> None:
    Table(
        "catalog_items",
        md,
        Column("id", String(128), primary_key=True),
        Column("title", Text, nullable=False),
        Column("description", Text, nullable=False),
        Column("category", String(128), nullable=False, index=True),
        Column("price", Float, nullable=False),
        Column("currency", String(8), nullable=False),
        Column("attributes", Text, nullable=False),
        Column("embedding", LargeBinary),
        Column("updated_at", Float, nullable=False, index=True),
    )
    Table(
        "events",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("person", String(256), nullable=False),
        Column("item_id", String(128), ForeignKey("catalog_items.id", ondelete="CASCADE"), nullable=False),
        Column("kind", String(16), nullable=False),
        Column("value", Float),
        Column("ts", Float, nullable=False),
        Index("ix_events_person_ts", "person", "ts"),
        Index("ix_events_item", "item_id"),
    )


def _posts_and_friends(md: MetaData) -> None:
    Table(
        "posts",
        md,
        Column("id", String(64), primary_key=True),
        Column("author", String(256), nullable=False, index=True),
        Column("text", Text, nullable=False),
        Column("audience", String(16), nullable=False),
        Column("created_at", Float, nullable=False),
    )
    Table(
        "post_items",
        md,
        Column("post_id", String(64), ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
        Column("item_id", String(128), ForeignKey("catalog_items.id", ondelete="CASCADE"), primary_key=True),
        Index("ix_post_items_item", "item_id"),
    )
    Table(
        "post_audience",
        md,
        Column("post_id", String(64), ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
        Column("person", String(256), primary_key=True),
        Index("ix_post_audience_person", "person"),
    )
    Table(
        "friendships",
        md,
        Column("person", String(256), primary_key=True),
        Column("friend", String(256), primary_key=True),
        Column("created_at", Float, nullable=False),
        Index("ix_friendships_friend", "friend"),
    )


def _split(stored: str) -> tuple[str, str]:
    """A person as 0001-0004 stored it (`owner/user`, or a bare name) as (tenant, name). A bare name stays
    with the operator (tenant ""): before 0005 a key's owner acting for itself and a local person of the
    same name were one row, and the operator is the one who could already see both."""
    tenant, slash, name = stored.partition("/")
    return (tenant, name) if slash else ("", stored)


Row = dict[str, Any]
REBUILT = ("post_items", "post_audience", "posts", "friendships", "consent")  # children before parents


def m0005_tenants(conn: Connection) -> None:
    """Persons become two exact columns (tenant, name) instead of one `owner/user` string matched by
    prefix: `tenant` is added to conversations and events, and consent, posts (ids now per tenant), their
    items and audiences, and friendships are rebuilt with the tenant in their keys. Rows are kept, except
    a friendship or a post's named person in another tenant than its other side (only an operator import
    could make one), which can no longer be expressed."""
    for table, column in (("conversations", "user_id"), ("events", "person")):
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN tenant VARCHAR(256) NOT NULL DEFAULT ''")
        for stored in conn.exec_driver_sql(f"SELECT DISTINCT {column} FROM {table}").scalars().all():
            tenant, name = _split(stored)
            if tenant:
                conn.execute(
                    text(f"UPDATE {table} SET tenant = :t, {column} = :n WHERE {column} = :s"),
                    {"t": tenant, "n": name, "s": stored},
                )
    conn.exec_driver_sql("DROP INDEX ix_conversations_user_updated")
    conn.exec_driver_sql("DROP INDEX ix_events_person_ts")
    conn.exec_driver_sql("CREATE INDEX ix_conversations_owner_updated ON conversations (tenant, user_id, updated_at)")
    conn.exec_driver_sql("CREATE INDEX ix_events_owner_ts ON events (tenant, person, ts)")
    old = {name: [dict(r._mapping) for r in conn.exec_driver_sql(f"SELECT * FROM {name}")] for name in REBUILT}
    for name in REBUILT:
        conn.exec_driver_sql(f"DROP TABLE {name}")
    md = MetaData()
    _tenant_tables(md)
    md.create_all(conn)
    for name, rows in _rebuilt_rows(old).items():
        if rows:
            conn.execute(md.tables[name].insert(), rows)


def _rebuilt_rows(old: dict[str, list[Row]]) -> dict[str, list[Row]]:
    """The rebuilt tables' rows, parents first."""
    tenant_of: dict[str, str] = {}
    posts = []
    for row in old["posts"]:
        tenant, author = _split(row["author"])
        tenant_of[row["id"]] = tenant
        posts.append({**row, "tenant": tenant, "author": author})
    audience = []
    for row in old["post_audience"]:
        tenant, person = _split(row["person"])
        if tenant == tenant_of[row["post_id"]]:
            audience.append({**row, "tenant": tenant, "person": person})
    friendships = []
    for row in old["friendships"]:
        (tenant, person), (other_tenant, friend) = _split(row["person"]), _split(row["friend"])
        if tenant == other_tenant:
            friendships.append({**row, "tenant": tenant, "person": person, "friend": friend})
    return {
        "posts": posts,
        "post_items": [{**row, "tenant": tenant_of[row["post_id"]]} for row in old["post_items"]],
        "post_audience": audience,
        "friendships": friendships,
        "consent": [
            {**row, **dict(zip(("tenant", "person"), _split(row["person"]), strict=True))} for row in old["consent"]
        ],
    }


def _tenant_tables(md: MetaData) -> None:
    Table(
        "consent",
        md,
        Column("tenant", String(256), primary_key=True),
        Column("person", String(256), primary_key=True),
        Column("history", Boolean, nullable=False),
        Column("personalisation", Boolean, nullable=False),
        Column("health_storage", Boolean, nullable=False),
        Column("updated_at", Float, nullable=False),
    )
    Table(
        "posts",
        md,
        Column("tenant", String(256), primary_key=True),
        Column("id", String(64), primary_key=True),
        Column("author", String(256), nullable=False),
        Column("text", Text, nullable=False),
        Column("audience", String(16), nullable=False),
        Column("created_at", Float, nullable=False),
        Index("ix_posts_author", "tenant", "author"),
    )
    Table(
        "post_items",
        md,
        Column("tenant", String(256), primary_key=True),
        Column("post_id", String(64), primary_key=True),
        Column("item_id", String(128), ForeignKey("catalog_items.id", ondelete="CASCADE"), primary_key=True),
        _of_post(),
        Index("ix_post_items_item", "item_id"),
    )
    Table(
        "post_audience",
        md,
        Column("tenant", String(256), primary_key=True),
        Column("post_id", String(64), primary_key=True),
        Column("person", String(256), primary_key=True),
        _of_post(),
        Index("ix_post_audience_person", "tenant", "person"),
    )
    Table(
        "friendships",
        md,
        Column("tenant", String(256), primary_key=True),
        Column("person", String(256), primary_key=True),
        Column("friend", String(256), primary_key=True),
        Column("created_at", Float, nullable=False),
        Index("ix_friendships_friend", "tenant", "friend"),
    )
    Table("catalog_items", md, Column("id", String(128), primary_key=True))  # referenced, exists already


def _of_post() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["tenant", "post_id"], ["posts.tenant", "posts.id"], ondelete="CASCADE")


def m0006_tool_calls(conn: Connection) -> None:
    """A stored assistant turn's tool calls (JSON) and the call a stored tool turn answers."""
    conn.execute(text("ALTER TABLE messages ADD COLUMN tool_calls TEXT"))
    conn.execute(text("ALTER TABLE messages ADD COLUMN tool_call_id VARCHAR(64)"))


def m0007_responses(conn: Connection) -> None:
    """Stored responses of the Responses API: whose (tenant, person), what they continued, and their input,
    output, settings and usage as JSON."""
    md = MetaData()
    Table(
        "responses",
        md,
        Column("id", String(64), primary_key=True),
        Column("tenant", String(256), nullable=False),
        Column("person", String(256), nullable=False),
        Column("previous_id", String(64)),
        Column("model", String(64), nullable=False),
        Column("status", String(16), nullable=False),
        Column("created_at", Float, nullable=False),
        Column("input", Text, nullable=False),
        Column("output", Text, nullable=False),
        Column("settings", Text, nullable=False),
        Column("usage", Text, nullable=False),
        Index("ix_responses_owner_created", "tenant", "person", "created_at"),
        Index("ix_responses_created", "created_at"),
    )
    md.create_all(conn)


def m0008_image_descriptions(conn: Connection) -> None:
    """A stored user turn's image descriptions (JSON): what later turns of the conversation know of its images."""
    conn.execute(text("ALTER TABLE messages ADD COLUMN descriptions TEXT"))


def m0009_memory(conn: Connection) -> None:
    """The `memory` consent flag (off) and the facts a person asked Ember to remember."""
    conn.execute(text("ALTER TABLE consent ADD COLUMN memory BOOLEAN NOT NULL DEFAULT false"))
    md = MetaData()
    Table(
        "memories",
        md,
        Column("id", String(40), primary_key=True),
        Column("tenant", String(256), nullable=False),
        Column("person", String(256), nullable=False),
        Column("text", Text, nullable=False),
        Column("created_at", Float, nullable=False),
        Index("ix_memories_person", "tenant", "person", "created_at"),
    )
    md.create_all(conn)


def m0010_media(conn: Connection) -> None:
    """The `media_storage` consent flag (off); a stored user turn's image and audio parts; stored images, one
    per distinct image (sha256) per person."""
    conn.execute(text("ALTER TABLE consent ADD COLUMN media_storage BOOLEAN NOT NULL DEFAULT false"))
    md = MetaData()
    Table("conversations", md, Column("id", String(64), primary_key=True))  # referenced, exists already
    Table(
        "message_parts",
        md,
        Column("conversation_id", String(64), ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
        Column("seq", Integer, primary_key=True),
        Column("part", Integer, primary_key=True),
        Column("kind", String(8), nullable=False),
        Column("sha256", String(64)),
        Column("mime", String(32)),
        Column("width", Integer),
        Column("height", Integer),
        Column("bytes", Integer),
        Column("not_kept", String(32)),
        Column("transcript", Text),
        Column("language", String(16)),
        Column("duration", Float),
        Index("ix_message_parts_sha256", "sha256"),
    )
    Table(
        "media",
        md,
        Column("tenant", String(256), primary_key=True),
        Column("person", String(256), primary_key=True),
        Column("sha256", String(64), primary_key=True),
        Column("mime", String(32), nullable=False),
        Column("width", Integer, nullable=False),
        Column("height", Integer, nullable=False),
        Column("data", LargeBinary, nullable=False),
        Column("created_at", Float, nullable=False),
    )
    md.create_all(conn)


def m0011_branches_and_titles(conn: Connection) -> None:
    """Conversations become trees, and remember who wrote their title. Each message names the turn it follows
    (`parent_seq`; NULL for a first turn) and each conversation the turn its active branch ends at
    (`active_seq`); stored conversations become one branch: every turn follows the one before it, and the last
    is active. `title_by` says who wrote the title: `message` (the first message, cut; stored titles are
    taken as that), `model` (the fast model) or `person` (a rename, which nothing overwrites)."""
    conn.execute(text("ALTER TABLE messages ADD COLUMN parent_seq INTEGER"))
    conn.execute(
        text(
            "UPDATE messages SET parent_seq = (SELECT max(m.seq) FROM messages m"
            " WHERE m.conversation_id = messages.conversation_id AND m.seq < messages.seq)"
        )
    )
    conn.execute(text("ALTER TABLE conversations ADD COLUMN active_seq INTEGER"))
    conn.execute(
        text(
            "UPDATE conversations SET active_seq = (SELECT max(m.seq) FROM messages m"
            " WHERE m.conversation_id = conversations.id)"
        )
    )
    conn.execute(text("ALTER TABLE conversations ADD COLUMN title_by VARCHAR(16) NOT NULL DEFAULT 'message'"))


MIGRATIONS: tuple[tuple[str, Migration], ...] = (
    ("0001_conversations", m0001_conversations),
    ("0002_api_keys", m0002_api_keys),
    ("0003_consent", m0003_consent),
    ("0004_shopping", m0004_shopping),
    ("0005_tenants", m0005_tenants),
    ("0006_tool_calls", m0006_tool_calls),
    ("0007_responses", m0007_responses),
    ("0008_image_descriptions", m0008_image_descriptions),
    ("0009_memory", m0009_memory),
    ("0010_media", m0010_media),
    ("0011_branches_and_titles", m0011_branches_and_titles),
)


def migrate(db: Engine) -> list[str]:
    """Apply the migrations this database lacks, in order; return their names."""
    with db.begin() as conn:
        _ledger.create(conn, checkfirst=True)
        done = set(conn.scalars(select(_ledger.c.name)))
    applied = []
    for name, migration in MIGRATIONS:
        if name in done:
            continue
        with db.begin() as conn:
            migration(conn)
            conn.execute(_ledger.insert().values(name=name, applied_at=time.time()))
        applied.append(name)
    return applied
