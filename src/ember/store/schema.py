"""The current tables, for queries. Migrations (not this file) create and change them.

Every table that names a person holds it as two exact columns: `tenant` (an API key's owner, "" for the
operator and keyless local use) and the person's name within it (`ember.types.Person`). Queries compare
both with `=`, never with a prefix or LIKE."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(64), primary_key=True),  # issued by the server
    Column("tenant", String(256), nullable=False),
    Column("user_id", String(256), nullable=False),
    Column("mode", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

messages = Table(
    "messages",
    metadata,
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
)

api_keys = Table(
    "api_keys",
    metadata,
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

consent = Table(
    "consent",
    metadata,
    Column("tenant", String(256), primary_key=True),
    Column("person", String(256), primary_key=True),
    Column("history", Boolean, nullable=False),
    Column("personalisation", Boolean, nullable=False),
    Column("health_storage", Boolean, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# shopping (migration 0004): the catalogue, behaviour, shared posts and friendships
catalog_items = Table(
    "catalog_items",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("category", String(128), nullable=False, index=True),
    Column("price", Float, nullable=False),
    Column("currency", String(8), nullable=False),
    Column("attributes", Text, nullable=False),  # a JSON object
    Column("embedding", LargeBinary),  # float32 MiniLM vector of title + description; NULL until computed
    Column("updated_at", Float, nullable=False, index=True),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(256), nullable=False),
    Column("person", String(256), nullable=False),
    Column("item_id", String(128), ForeignKey("catalog_items.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("value", Float),
    Column("ts", Float, nullable=False),
)

posts = Table(
    "posts",
    metadata,
    Column("tenant", String(256), primary_key=True),
    Column("id", String(64), primary_key=True),  # chosen by the tenant: unique within it
    Column("author", String(256), nullable=False),
    Column("text", Text, nullable=False),
    Column("audience", String(16), nullable=False),  # public | friends | people (those in post_audience)
    Column("created_at", Float, nullable=False),
)

post_items = Table(
    "post_items",
    metadata,
    Column("tenant", String(256), primary_key=True),
    Column("post_id", String(64), primary_key=True),
    Column("item_id", String(128), ForeignKey("catalog_items.id", ondelete="CASCADE"), primary_key=True),
    ForeignKeyConstraint(["tenant", "post_id"], ["posts.tenant", "posts.id"], ondelete="CASCADE"),
)

post_audience = Table(
    "post_audience",
    metadata,
    Column("tenant", String(256), primary_key=True),
    Column("post_id", String(64), primary_key=True),
    Column("person", String(256), primary_key=True),
    ForeignKeyConstraint(["tenant", "post_id"], ["posts.tenant", "posts.id"], ondelete="CASCADE"),
)

friendships = Table(  # one row per direction: a friendship between a and b is (a, b) and (b, a)
    "friendships",
    metadata,
    Column("tenant", String(256), primary_key=True),
    Column("person", String(256), primary_key=True),
    Column("friend", String(256), primary_key=True),
    Column("created_at", Float, nullable=False),
)
