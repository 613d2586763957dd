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
    false,
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
    Column("active_seq", Integer),  # the turn the active branch ends at (migration 0010)
    Column("title_by", String(16), nullable=False, server_default="message"),  # message | model | person
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
    Column("tool_calls", Text),  # an assistant turn's calls: [{"id", "name", "arguments"}] as JSON
    Column("tool_call_id", String(64)),  # a tool turn: the call it answers
    Column("descriptions", Text),  # a user turn's images as the image readers described them: JSON strings
    Column("parent_seq", Integer),  # the turn this one follows (its seq); NULL: a first turn (migration 0010)
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
    Column("memory", Boolean, nullable=False, server_default=false()),
    Column("media_storage", Boolean, nullable=False, server_default=false()),
)

# a stored user turn's images and audio clips (migration 0010), images first, then audio, each in the order sent
message_parts = Table(
    "message_parts",
    metadata,
    Column("conversation_id", String(64), ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),  # the message's
    Column("part", Integer, primary_key=True),
    Column("kind", String(8), nullable=False),  # image | audio
    Column("sha256", String(64)),  # an image: of the bytes intake decoded (the media row that holds them)
    Column("mime", String(32)),
    Column("width", Integer),
    Column("height", Integer),
    Column("bytes", Integer),
    Column("not_kept", String(32)),  # an image not kept in media, and why: too_large | media_storage_off
    Column("transcript", Text),  # an audio clip: what was heard, in which language, how many seconds
    Column("language", String(16)),
    Column("duration", Float),
)

# stored images (migration 0010): one row per distinct image (sha256) per person, while a stored part names it
media = Table(
    "media",
    metadata,
    Column("tenant", String(256), primary_key=True),
    Column("person", String(256), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("mime", String(32), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

# facts a person asked Ember to remember (migration 0009), used only while their `memory` consent is on
memories = Table(
    "memories",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", String(256), nullable=False),
    Column("person", String(256), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

# the Responses API (migration 0007): each stored response, its own input and its output as OpenAI's items (JSON)
responses = Table(
    "responses",
    metadata,
    Column("id", String(64), primary_key=True),  # issued by the server
    Column("tenant", String(256), nullable=False),
    Column("person", String(256), nullable=False),
    Column("previous_id", String(64)),  # the response it continued; no foreign key: deleting one keeps the next
    Column("model", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("input", Text, nullable=False),  # a JSON list of items
    Column("output", Text, nullable=False),  # a JSON list of items
    Column("settings", Text, nullable=False),  # a JSON object: the request's settings the response shows
    Column("usage", Text, nullable=False),  # a JSON object: input, output and reasoning tokens
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
