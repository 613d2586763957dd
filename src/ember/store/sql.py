"""SQLAlchemy Core store: one code path for SQLite (WAL, the default) and Postgres.

Methods are synchronous; async callers run them in a worker thread. The store stores, reads back and
deletes; it does not decide what to keep (that is the pipeline's and `ember.policy.privacy`'s job).
Message content never reaches SQLAlchemy's logs: statement parameters are hidden (`hide_parameters`,
also in error messages) and the rows it logs at DEBUG are dropped by a filter on our engines' logger.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Table, create_engine, delete, event, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from ember.errors import NotFound
from ember.store.migrations import migrate
from ember.store.schema import api_keys, consent, conversations, messages
from ember.types import Message, Person, Usage

TITLE_CHARS = 80
LOGGING_NAME = "ember"  # our engines log as sqlalchemy.engine.Engine.ember


@dataclass(frozen=True)
class StoredAnswer:
    content: str
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


def new_conversation_id() -> str:
    return "conv_" + uuid.uuid4().hex


def _storable(text: str) -> str:
    """Model output as a database keeps it: NUL, which Postgres text refuses, becomes U+FFFD. (Requests
    with NUL are refused at intake; an engine may still emit one.)"""
    return text.replace("\x00", "\ufffd")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: each commit is synced to disk before it returns. NORMAL in WAL mode survives a killed process
    # but may lose the last commits to a power cut or an OS crash, after the client was told they were done;
    # one fsync per stored exchange costs nothing next to generating the answer.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left in free pages
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


class _NoRows(logging.Filter):
    """Drops SQLAlchemy's DEBUG records (fetched rows and their columns): rows carry message content."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_NO_ROWS = _NoRows()


def open_engine(url: str) -> Engine:
    logging.getLogger(f"sqlalchemy.engine.Engine.{LOGGING_NAME}").addFilter(_NO_ROWS)  # once: same filter
    quiet: dict[str, Any] = {"hide_parameters": True, "logging_name": LOGGING_NAME}
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **quiet)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, **quiet)


class SqlStore:
    def __init__(self, url: str) -> None:
        self.engine = open_engine(url)
        migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def owner_of(self, conversation_id: str) -> Person | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(conversations.c.tenant, conversations.c.user_id).where(conversations.c.id == conversation_id)
            ).first()
        return None if row is None else Person(row.tenant, row.user_id)

    def history(self, conversation_id: str, user: Person) -> list[Message]:
        """The stored turns of `user`'s conversation, in order (NotFound if it is not theirs)."""
        with self.engine.connect() as conn:
            if conn.scalar(select(conversations.c.id).where(_is_conversation_of(conversation_id, user))) is None:
                raise NotFound(f"conversation {conversation_id!r} not found", param="conversation_id")
            rows = conn.execute(
                select(messages.c.role, messages.c.content)
                .where(messages.c.conversation_id == conversation_id)
                .order_by(messages.c.seq)
            )
            return [Message(row.role, row.content) for row in rows]

    def save_exchange(
        self, *, conversation_id: str, user: Person, mode: str, prompt: list[Message], answer: StoredAnswer
    ) -> None:
        """Store the prompt turns not yet stored for this conversation, then the answer. A conversation
        id that another person holds is NotFound, and nothing is written."""
        now = time.time()
        with self.engine.begin() as conn:
            owner = conn.execute(
                select(conversations.c.tenant, conversations.c.user_id).where(conversations.c.id == conversation_id)
            ).first()
            if owner is not None and Person(owner.tenant, owner.user_id) != user:
                raise NotFound(f"conversation {conversation_id!r} not found", param="conversation_id")
            stored = conn.scalar(
                select(func.count()).select_from(messages).where(messages.c.conversation_id == conversation_id)
            )
            if owner is None:
                title = next((m.content for m in prompt if m.role == "user"), "")[:TITLE_CHARS]
                conn.execute(
                    conversations.insert().values(
                        id=conversation_id,
                        tenant=user.tenant,
                        user_id=user.name,
                        mode=mode,
                        title=title or "(untitled)",
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                conn.execute(
                    conversations.update()
                    .where(conversations.c.id == conversation_id)
                    .values(updated_at=now, mode=mode)
                )
            conn.execute(messages.insert(), _message_rows(conversation_id, prompt, stored or 0, answer, now))

    def list_conversations(
        self, user: Person, limit: int = 50, before: float | None = None, modes: Collection[str] | None = None
    ) -> list[dict[str, Any]]:
        """`user`'s conversations, newest first (with `modes`, only those held with one of them)."""
        query = select(conversations).where(*owned_by(conversations, user, "user_id"))
        if modes is not None:
            query = query.where(conversations.c.mode.in_(list(modes)))
        if before is not None:
            query = query.where(conversations.c.updated_at < before)
        query = query.order_by(conversations.c.updated_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_conversation_json(row._mapping) for row in conn.execute(query)]

    def get_conversation(
        self, conversation_id: str, user: Person, modes: Collection[str] | None = None
    ) -> dict[str, Any]:
        query = select(conversations).where(_is_conversation_of(conversation_id, user))
        if modes is not None:
            query = query.where(conversations.c.mode.in_(list(modes)))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
            if row is None:
                raise NotFound(f"conversation {conversation_id!r} not found", param="conversation_id")
            return _with_messages(conn, row._mapping)

    # --- privacy: consent, export, erasure, retention ---------------------------------------------------------

    def get_consent(self, person: Person) -> dict[str, bool] | None:
        """The person's stored consent flags, or None if they never set any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(consent).where(*owned_by(consent, person))).first()
        return None if row is None else _flags(row._mapping)

    def set_consent(self, person: Person, changes: dict[str, bool], defaults: dict[str, bool]) -> None:
        """Set `changes`; a person without a row first gets `defaults`. Concurrent writes of other flags survive."""
        values = {**changes, "updated_at": time.time()}
        mine = owned_by(consent, person)
        try:
            with self.engine.begin() as conn:
                if conn.execute(update(consent).where(*mine).values(**values)).rowcount:
                    return
                row = {"tenant": person.tenant, "person": person.name, **defaults, **values}
                conn.execute(consent.insert().values(**row))
        except IntegrityError:  # a concurrent first write inserted the row: change it
            with self.engine.begin() as conn:
                conn.execute(update(consent).where(*mine).values(**values))

    def export_person(self, person: Person, *, tenant: bool) -> dict[str, Any]:
        """Everything stored about `person` (with `tenant`, about everyone in their tenant, and the API keys
        its owner holds, without hashes): consent flags, conversations with their messages."""
        with self.engine.connect() as conn:
            flags = conn.execute(select(consent).where(*owned_by(consent, person, whole=tenant)))
            convs = conn.execute(
                select(conversations)
                .where(*owned_by(conversations, person, "user_id", whole=tenant))
                .order_by(conversations.c.created_at, conversations.c.id)
            ).all()
            out: dict[str, Any] = {
                "consent": {Person(row.tenant, row.person).label: _flags(row._mapping) for row in flags},
                "conversations": [_with_messages(conn, row._mapping) for row in convs],
            }
            if tenant:
                public = [c for c in api_keys.c if c.name != "hash"]
                query = select(*public).where(api_keys.c.owner == person.tenant).order_by(api_keys.c.created_at)
                out["api_keys"] = [dict(row._mapping) for row in conn.execute(query)]
        return out

    def delete_person(self, person: Person, *, tenant: bool) -> dict[str, int]:
        """Hard-delete `person` (with `tenant`, everyone in their tenant and the API keys its owner holds)
        from every table, in one transaction. Returns the rows deleted per table."""
        owned = owned_by(conversations, person, "user_id", whole=tenant)
        with self.engine.begin() as conn:
            ids = select(conversations.c.id).where(*owned)
            counts = {
                "messages": conn.execute(delete(messages).where(messages.c.conversation_id.in_(ids))).rowcount,
                "conversations": conn.execute(delete(conversations).where(*owned)).rowcount,
                "consent": conn.execute(delete(consent).where(*owned_by(consent, person, whole=tenant))).rowcount,
                "api_keys": (
                    conn.execute(delete(api_keys).where(api_keys.c.owner == person.tenant)).rowcount if tenant else 0
                ),
            }
        return counts

    def checkpoint(self) -> None:
        """Fold SQLite's write-ahead log into the database file and empty it, so that deleted text does not
        linger there (a no-op on other databases)."""
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def purge_before(self, cutoff: float) -> tuple[int, int]:
        """Delete conversations last updated before `cutoff` (epoch seconds) with their messages;
        return how many of each."""
        old = select(conversations.c.id).where(conversations.c.updated_at < cutoff)
        with self.engine.begin() as conn:
            gone_messages = conn.execute(delete(messages).where(messages.c.conversation_id.in_(old))).rowcount
            gone = conn.execute(delete(conversations).where(conversations.c.updated_at < cutoff)).rowcount
        return gone, gone_messages


def owned_by(table: Table, person: Person, column: str = "person", *, whole: bool = False) -> list[ColumnElement[bool]]:
    """The conditions on `table`'s rows that are `person`'s (with `whole`, anyone's in their tenant):
    exact equality on the tenant and the name, never a prefix."""
    mine = [table.c.tenant == person.tenant]
    return mine if whole else [*mine, table.c[column] == person.name]


def _is_conversation_of(conversation_id: str, user: Person) -> ColumnElement[bool]:
    return (
        (conversations.c.id == conversation_id)
        & (conversations.c.tenant == user.tenant)
        & (conversations.c.user_id == user.name)
    )


def _message_rows(
    conversation_id: str, prompt: list[Message], stored: int, answer: StoredAnswer, now: float
) -> list[dict[str, Any]]:
    """The rows of the prompt turns after the `stored` ones and of the answer; every row names every column
    (an executemany takes its columns from the first row)."""
    blank = {"reasoning": None, "finish_reason": None, "prompt_tokens": None, "completion_tokens": None}
    rows: list[dict[str, Any]] = [{**blank, "role": m.role, "content": m.content} for m in prompt[stored:]]
    usage = answer.usage or Usage()
    rows.append(
        {
            "role": "assistant",
            "content": _storable(answer.content),
            "reasoning": _storable(answer.reasoning) or None,
            "finish_reason": answer.finish_reason,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
        }
    )
    return [
        {"conversation_id": conversation_id, "seq": stored + i, "created_at": now, **row} for i, row in enumerate(rows)
    ]


def _flags(row: Any) -> dict[str, bool]:
    return {
        "history": row["history"],
        "personalisation": row["personalisation"],
        "health_storage": row["health_storage"],
    }


def _with_messages(conn: Connection, row: Any) -> dict[str, Any]:
    turns = conn.execute(select(messages).where(messages.c.conversation_id == row["id"]).order_by(messages.c.seq))
    return {**_conversation_json(row), "messages": [_message_json(m._mapping) for m in turns]}


def _conversation_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "conversation",
        "user": Person(row["tenant"], row["user_id"]).label,
        "mode": row["mode"],
        "title": row["title"],
        "created_at": int(row["created_at"]),
        "updated_at": int(row["updated_at"]),
    }


def _message_json(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "role": row["role"],
        "content": row["content"],
        "created_at": int(row["created_at"]),
    }
    if row["reasoning"]:
        out["reasoning_content"] = row["reasoning"]
    if row["role"] == "assistant":
        out["finish_reason"] = row["finish_reason"]
        out["usage"] = Usage(row["prompt_tokens"] or 0, row["completion_tokens"] or 0).as_dict()
    return out
