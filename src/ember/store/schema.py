"""The current tables, for queries. Migrations (not this file) create and change them."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, ForeignKey, Integer, MetaData, String, Table, Text

metadata = MetaData()

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(256), nullable=False, index=True),
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
    Column("person", String(256), primary_key=True),
    Column("history", Boolean, nullable=False),
    Column("personalisation", Boolean, nullable=False),
    Column("health_storage", Boolean, nullable=False),
    Column("updated_at", Float, nullable=False),
)
