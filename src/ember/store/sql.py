"""SQLAlchemy Core store: one code path for SQLite (WAL, the default) and Postgres.

Methods are synchronous; async callers run them in a worker thread. The store stores, reads back and
deletes; it does not decide what to keep (that is the pipeline's and `ember.policy.privacy`'s job).
Message content never reaches SQLAlchemy's logs: statement parameters are hidden (`hide_parameters`,
also in error messages) and the rows it logs at DEBUG are dropped by a filter on our SQLAlchemy logger.
"""

from __future__ import annotations

import json
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
from ember.store import parts
from ember.store.branches import Tree
from ember.store.migrations import migrate
from ember.store.schema import api_keys, consent, conversations, media, messages
from ember.types import Anchor, Message, Person, ToolCall, Usage

TITLE_CHARS = 80
LOGGING_NAME = "ember"  # our databases log as sqlalchemy.engine.Engine.ember


@dataclass(frozen=True)
class StoredAnswer:
    content: str
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()


def _calls_json(calls: tuple[ToolCall, ...]) -> str | None:
    return json.dumps([c.__dict__ for c in calls], ensure_ascii=False) if calls else None


def _calls_of(text: str | None) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(**c) for c in json.loads(text)) if text else ()


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


def open_db(url: str) -> Engine:
    logging.getLogger(f"sqlalchemy.engine.Engine.{LOGGING_NAME}").addFilter(_NO_ROWS)  # once: same filter
    quiet: dict[str, Any] = {"hide_parameters": True, "logging_name": LOGGING_NAME}
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        db = create_engine(url, connect_args={"check_same_thread": False}, **quiet)
        event.listen(db, "connect", _sqlite_pragmas)
        return db
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, **quiet)


class SqlStore:
    def __init__(self, url: str) -> None:
        self.db = open_db(url)
        migrate(self.db)

    def close(self) -> None:
        self.db.dispose()

    def owner_of(self, conversation_id: str) -> Person | None:
        with self.db.connect() as conn:
            row = conn.execute(
                select(conversations.c.tenant, conversations.c.user_id).where(conversations.c.id == conversation_id)
            ).first()
        return None if row is None else Person(row.tenant, row.user_id)

    def history(self, conversation_id: str, user: Person, replace: int | None = None) -> tuple[list[Message], Anchor]:
        """The stored turns of `user`'s conversation that new turns follow, and where those go: its active
        branch, or with `replace`, the turns before that one (the new ones go beside it, as a new branch).
        NotFound if the conversation is not theirs, or has no turn `replace`."""
        with self.db.connect() as conn:
            active = conn.execute(
                select(conversations.c.active_seq).where(_is_conversation_of(conversation_id, user))
            ).first()
            if active is None:
                raise NotFound(f"conversation {conversation_id!r} not found", param="conversation_id")
            rows = {
                row.seq: row
                for row in conn.execute(select(messages).where(messages.c.conversation_id == conversation_id))
            }
        tree = Tree((seq, row.parent_seq) for seq, row in rows.items())
        if replace is not None and replace not in tree:
            raise NotFound(f"conversation {conversation_id!r} has no message {replace}", param="replace")
        end = active.active_seq if replace is None else tree.parents[replace]
        turns = [rows[seq] for seq in tree.path(end)]
        return [_message_of(row) for row in turns], Anchor(end, len(turns))

    def save_exchange(
        self,
        *,
        conversation_id: str,
        user: Person,
        mode: str,
        prompt: list[Message],
        answer: StoredAnswer,
        keeping: parts.Keeping = parts.NOTHING_KEPT,
        anchor: Anchor | None = None,
    ) -> bool:
        """Store the prompt turns after the `anchor.stored` ones already stored (with their image and audio
        parts, and the images `keeping` keeps), then the answer, as a branch after turn `anchor.after` (without
        `anchor`: at the end of the active branch), and show that branch. Returns whether this exchange began
        the conversation. A conversation id that another person holds is
        NotFound, and nothing is written."""
        now = time.time()
        with self.db.begin() as conn:
            owner = conn.execute(
                select(conversations.c.tenant, conversations.c.user_id, conversations.c.active_seq).where(
                    conversations.c.id == conversation_id
                )
            ).first()
            if owner is not None and Person(owner.tenant, owner.user_id) != user:
                raise NotFound(f"conversation {conversation_id!r} not found", param="conversation_id")
            if owner is None:  # new (or deleted while this answer was written): every turn is stored
                anchor = Anchor()
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
            elif anchor is None:
                anchor = Anchor(owner.active_seq, len(Tree.read(conn, conversation_id).path(owner.active_seq)))
            last = conn.scalar(select(func.max(messages.c.seq)).where(messages.c.conversation_id == conversation_id))
            start = 0 if last is None else last + 1  # seqs go on after the last stored, whatever its branch
            rows = _message_rows(prompt[anchor.stored :], answer)
            for n, row in enumerate(rows):  # a chain: the first after the anchor, each after the one before
                parent = anchor.after if n == 0 else start + n - 1
                row |= {"conversation_id": conversation_id, "seq": start + n, "parent_seq": parent, "created_at": now}
            conn.execute(messages.insert(), rows)
            parts.write(conn, user, conversation_id, start, prompt[anchor.stored :], keeping)
            conn.execute(
                conversations.update()
                .where(conversations.c.id == conversation_id)
                .values(updated_at=now, mode=mode, active_seq=rows[-1]["seq"])
            )
            return owner is None

    def list_conversations(
        self,
        user: Person,
        limit: int = 50,
        before: float | None = None,
        modes: Collection[str] | None = None,
        text: str | None = None,
    ) -> list[dict[str, Any]]:
        """`user`'s conversations, newest first (with `modes`, only those held with one of them; with `text`,
        only those whose title or a message holds it, ignoring case)."""
        query = select(conversations).where(*owned_by(conversations, user, "user_id"))
        if modes is not None:
            query = query.where(conversations.c.mode.in_(list(modes)))
        if text:
            needle = text.lower()
            said = select(messages.c.id).where(
                (messages.c.conversation_id == conversations.c.id)
                & func.lower(messages.c.content).contains(needle, autoescape=True)
            )
            query = query.where(func.lower(conversations.c.title).contains(needle, autoescape=True) | said.exists())
        if before is not None:
            query = query.where(conversations.c.updated_at < before)
        query = query.order_by(conversations.c.updated_at.desc()).limit(limit)
        with self.db.connect() as conn:
            return [_conversation_json(row._mapping) for row in conn.execute(query)]

    def get_conversation(
        self, conversation_id: str, user: Person, modes: Collection[str] | None = None
    ) -> dict[str, Any]:
        """`user`'s conversation with the turns of its active branch; NotFound if it is not theirs (or not of
        `modes`)."""
        with self.db.connect() as conn:
            row = conn.execute(select(conversations).where(_owned(conversation_id, user, modes))).first()
            if row is None:
                raise NotFound(f"conversation {conversation_id!r} not found", param="conversation_id")
            return _with_messages(conn, row._mapping)

    def show_branch(
        self, conversation_id: str, user: Person, seq: int, modes: Collection[str] | None = None
    ) -> dict[str, Any]:
        """Make the branch through turn `seq` of `user`'s conversation the active one (it ends at the newest
        turn under `seq`) and return the conversation as `get_conversation` does. NotFound if the conversation
        is not theirs (or not of `modes`) or has no turn `seq`; then nothing changes."""
        owned = _owned(conversation_id, user, modes)
        with self.db.begin() as conn:
            if conn.scalar(select(conversations.c.id).where(owned)) is None:
                raise NotFound(f"conversation {conversation_id!r} not found", param="conversation_id")
            tree = Tree.read(conn, conversation_id)
            if seq not in tree:
                raise NotFound(f"conversation {conversation_id!r} has no message {seq}", param="seq")
            conn.execute(update(conversations).where(owned).values(active_seq=tree.latest_under(seq)))
            return _with_messages(conn, conn.execute(select(conversations).where(owned)).one()._mapping)

    def rename_conversation(
        self, conversation_id: str, user: Person, title: str, modes: Collection[str] | None = None
    ) -> dict[str, Any]:
        """Give `user`'s conversation a new title, which no title the model writes replaces; NotFound if it is
        not theirs (or not of `modes`)."""
        owned = _owned(conversation_id, user, modes)
        with self.db.begin() as conn:
            if conn.execute(update(conversations).where(owned).values(title=title, title_by="person")).rowcount != 1:
                raise NotFound(f"conversation {conversation_id!r} not found", param="conversation_id")
            return _conversation_json(conn.execute(select(conversations).where(owned)).one()._mapping)

    def write_title(self, conversation_id: str, title: str) -> bool:
        """Replace the conversation's title with one the model wrote, unless it is gone or its title is no
        longer the one cut from its first message (the person renamed it); returns whether it was replaced."""
        still_cut = (conversations.c.id == conversation_id) & (conversations.c.title_by == "message")
        with self.db.begin() as conn:
            return bool(
                conn.execute(update(conversations).where(still_cut).values(title=title, title_by="model")).rowcount
            )

    def delete_conversation(self, conversation_id: str, user: Person, modes: Collection[str] | None = None) -> int:
        """Delete `user`'s conversation and its messages, with the images no other of their turns names (then
        emptying SQLite's log, so their bytes are left in no file); returns how many messages went. NotFound if
        it is not theirs (or not of `modes`)."""
        owned = _owned(conversation_id, user, modes)
        with self.db.begin() as conn:
            if conn.scalar(select(conversations.c.id).where(owned)) is None:
                raise NotFound(f"conversation {conversation_id!r} not found", param="conversation_id")
            parts.drop_parts(conn, [conversation_id])
            gone = conn.execute(delete(messages).where(messages.c.conversation_id == conversation_id)).rowcount
            conn.execute(delete(conversations).where(owned))
            images = parts.drop_unnamed(conn, *owned_by(media, user))
        if images:
            self.checkpoint()
        return gone

    # --- privacy: consent, export, erasure, retention ---------------------------------------------------------

    def get_consent(self, person: Person) -> dict[str, bool] | None:
        """The person's stored consent flags, or None if they never set any."""
        with self.db.connect() as conn:
            row = conn.execute(select(consent).where(*owned_by(consent, person))).first()
        return None if row is None else _flags(row._mapping)

    def set_consent(self, person: Person, changes: dict[str, bool], defaults: dict[str, bool]) -> None:
        """Set `changes`; a person without a row first gets `defaults`. Concurrent writes of other flags survive."""
        values = {**changes, "updated_at": time.time()}
        mine = owned_by(consent, person)
        try:
            with self.db.begin() as conn:
                if conn.execute(update(consent).where(*mine).values(**values)).rowcount:
                    return
                row = {"tenant": person.tenant, "person": person.name, **defaults, **values}
                conn.execute(consent.insert().values(**row))
        except IntegrityError:  # a concurrent first write inserted the row: change it
            with self.db.begin() as conn:
                conn.execute(update(consent).where(*mine).values(**values))

    def export_person(self, person: Person, *, tenant: bool) -> dict[str, Any]:
        """Everything stored about `person` (with `tenant`, about everyone in their tenant, and the API keys
        its owner holds, without hashes): consent flags, conversations with their messages."""
        with self.db.connect() as conn:
            flags = conn.execute(select(consent).where(*owned_by(consent, person, whole=tenant)))
            convs = conn.execute(
                select(conversations)
                .where(*owned_by(conversations, person, "user_id", whole=tenant))
                .order_by(conversations.c.created_at, conversations.c.id)
            ).all()
            out: dict[str, Any] = {
                "consent": {Person(row.tenant, row.person).label: _flags(row._mapping) for row in flags},
                "conversations": [_with_messages(conn, row._mapping, every=True) for row in convs],
            }
            if tenant:
                public = [c for c in api_keys.c if c.name != "hash"]
                query = select(*public).where(api_keys.c.owner == person.tenant).order_by(api_keys.c.created_at)
                out["api_keys"] = [dict(row._mapping) for row in conn.execute(query)]
        return out

    def delete_person(self, person: Person, *, tenant: bool) -> dict[str, int]:
        """Hard-delete `person` (with `tenant`, everyone in their tenant and the API keys its owner holds)
        from every table, in one transaction. Returns the rows deleted per table (`media`: stored images)."""
        owned = owned_by(conversations, person, "user_id", whole=tenant)
        with self.db.begin() as conn:
            ids = select(conversations.c.id).where(*owned)
            parts.drop_parts(conn, ids)
            counts = {
                "messages": conn.execute(delete(messages).where(messages.c.conversation_id.in_(ids))).rowcount,
                "conversations": conn.execute(delete(conversations).where(*owned)).rowcount,
                "consent": conn.execute(delete(consent).where(*owned_by(consent, person, whole=tenant))).rowcount,
                "media": conn.execute(delete(media).where(*owned_by(media, person, whole=tenant))).rowcount,
                "api_keys": (
                    conn.execute(delete(api_keys).where(api_keys.c.owner == person.tenant)).rowcount if tenant else 0
                ),
            }
        return counts

    def checkpoint(self) -> None:
        """Fold SQLite's write-ahead log into the database file and empty it, so that deleted text does not
        linger there (a no-op on other databases)."""
        if self.db.dialect.name == "sqlite":
            with self.db.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def purge_before(self, cutoff: float) -> tuple[int, int]:
        """Delete conversations last updated before `cutoff` (epoch seconds) with their messages (and the
        images no remaining turn names); return how many conversations and messages."""
        old = select(conversations.c.id).where(conversations.c.updated_at < cutoff)
        with self.db.begin() as conn:
            parts.drop_parts(conn, old)
            gone_messages = conn.execute(delete(messages).where(messages.c.conversation_id.in_(old))).rowcount
            gone = conn.execute(delete(conversations).where(conversations.c.updated_at < cutoff)).rowcount
            parts.drop_unnamed(conn)
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


def _owned(conversation_id: str, user: Person, modes: Collection[str] | None) -> ColumnElement[bool]:
    """`user`'s conversation `conversation_id`, if it was held with one of `modes` (any, for None)."""
    owned = _is_conversation_of(conversation_id, user)
    return owned if modes is None else owned & conversations.c.mode.in_(list(modes))


def _message_rows(turns: list[Message], answer: StoredAnswer) -> list[dict[str, Any]]:
    """The rows of `turns` and of the answer, but for where they go (conversation, seq, parent, time); every
    row names every column (an executemany takes its columns from the first row)."""
    blank = {"reasoning": None, "finish_reason": None, "prompt_tokens": None, "completion_tokens": None}
    rows: list[dict[str, Any]] = [
        {
            **blank,
            "role": m.role,
            "content": m.content,
            "tool_calls": _calls_json(m.tool_calls),
            "tool_call_id": m.tool_call_id,
            "descriptions": json.dumps(list(m.descriptions), ensure_ascii=False) if m.descriptions else None,
        }
        for m in turns
    ]
    usage = answer.usage or Usage()
    rows.append(
        {
            "role": "assistant",
            "content": _storable(answer.content),
            "reasoning": _storable(answer.reasoning) or None,
            "finish_reason": answer.finish_reason,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "tool_calls": _calls_json(answer.tool_calls),
            "tool_call_id": None,
            "descriptions": None,
        }
    )
    return rows


def _message_of(row: Any) -> Message:
    """A stored turn as the pipeline reads it."""
    return Message(
        row.role,
        row.content,
        descriptions=tuple(json.loads(row.descriptions or "[]")),
        tool_calls=_calls_of(row.tool_calls),
        tool_call_id=row.tool_call_id,
    )


def _flags(row: Any) -> dict[str, bool]:
    return {
        "history": row["history"],
        "personalisation": row["personalisation"],
        "health_storage": row["health_storage"],
        "memory": row["memory"],
        "media_storage": row["media_storage"],
    }


def _with_messages(conn: Connection, row: Any, *, every: bool = False) -> dict[str, Any]:
    """The conversation with the turns of its active branch (with `every`: all its turns, of every branch),
    each with its place in the tree (its `seq`, the turn it follows and its siblings) and its parts."""
    query = select(messages).where(messages.c.conversation_id == row["id"]).order_by(messages.c.seq)
    turns = {m.seq: m._mapping for m in conn.execute(query)}
    tree = Tree((seq, turn["parent_seq"]) for seq, turn in turns.items())
    held = parts.read(conn, row["id"], Person(row["tenant"], row["user_id"]))
    shown = list(turns) if every else tree.path(row["active_seq"])
    return {
        **_conversation_json(row),
        "messages": [_message_json(turns[s], tree.siblings(s), held.get(s, [])) for s in shown],
    }


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


def _message_json(row: Any, siblings: list[int], turn_parts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "role": row["role"],
        "content": row["content"],
        "created_at": int(row["created_at"]),
        "seq": row["seq"],
        "parent": row["parent_seq"],
        "siblings": siblings,
    }
    if row["reasoning"]:
        out["reasoning_content"] = row["reasoning"]
    if row["tool_calls"]:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in _calls_of(row["tool_calls"])
        ]
    if row["tool_call_id"] is not None:
        out["tool_call_id"] = row["tool_call_id"]
    descriptions = json.loads(row["descriptions"] or "[]")
    if descriptions:
        out["image_descriptions"] = descriptions
    if turn_parts:
        out["parts"] = parts.with_descriptions(turn_parts, descriptions)
    if row["role"] == "assistant":
        out["finish_reason"] = row["finish_reason"]
        out["usage"] = Usage(row["prompt_tokens"] or 0, row["completion_tokens"] or 0).as_dict()
    return out
