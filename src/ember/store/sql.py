"""SQLAlchemy Core store: one code path for SQLite (WAL, the default) and Postgres.

Methods are synchronous; async callers run them in a worker thread. The store stores and reads back;
it does not decide what to keep (that is the pipeline's and, later, the privacy policy's job).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url

from ember.errors import NotFound
from ember.store.migrations import migrate
from ember.store.schema import conversations, messages
from ember.types import Message, Usage

TITLE_CHARS = 80


@dataclass(frozen=True)
class StoredAnswer:
    content: str
    reasoning: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


def new_conversation_id() -> str:
    return "conv_" + uuid.uuid4().hex


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def open_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True)


class SqlStore:
    def __init__(self, url: str) -> None:
        self.engine = open_engine(url)
        migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def owner_of(self, conversation_id: str) -> str | None:
        with self.engine.connect() as conn:
            owner: str | None = conn.scalar(
                select(conversations.c.user_id).where(conversations.c.id == conversation_id)
            )
            return owner

    def save_exchange(
        self, *, conversation_id: str, user: str, mode: str, prompt: list[Message], answer: StoredAnswer
    ) -> None:
        """Store the prompt turns not yet stored for this conversation, then the answer."""
        now = time.time()
        with self.engine.begin() as conn:
            stored = conn.scalar(
                select(func.count()).select_from(messages).where(messages.c.conversation_id == conversation_id)
            )
            if not stored:
                title = next((m.content for m in prompt if m.role == "user"), "")[:TITLE_CHARS]
                conn.execute(
                    conversations.insert().values(
                        id=conversation_id,
                        user_id=user,
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
            # every row names every column: an executemany takes its columns from the first row
            blank = {"reasoning": None, "finish_reason": None, "prompt_tokens": None, "completion_tokens": None}
            rows: list[dict[str, Any]] = [
                {**blank, "role": m.role, "content": m.content} for m in prompt[stored or 0 :]
            ]
            usage = answer.usage or Usage()
            rows.append(
                {
                    "role": "assistant",
                    "content": answer.content,
                    "reasoning": answer.reasoning or None,
                    "finish_reason": answer.finish_reason,
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                }
            )
            base = stored or 0
            conn.execute(
                messages.insert(),
                [
                    {"conversation_id": conversation_id, "seq": base + i, "created_at": now, **row}
                    for i, row in enumerate(rows)
                ],
            )

    def list_conversations(self, user: str, limit: int = 50, before: float | None = None) -> list[dict[str, Any]]:
        query = (
            select(conversations)
            .where(conversations.c.user_id == user)
            .order_by(conversations.c.updated_at.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(conversations.c.updated_at < before)
        with self.engine.connect() as conn:
            return [_conversation_json(row._mapping) for row in conn.execute(query)]

    def get_conversation(self, conversation_id: str, user: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(conversations).where(conversations.c.id == conversation_id, conversations.c.user_id == user)
            ).first()
            if row is None:
                raise NotFound(f"conversation {conversation_id!r} not found", param="conversation_id")
            turns = conn.execute(
                select(messages).where(messages.c.conversation_id == conversation_id).order_by(messages.c.seq)
            )
            result = _conversation_json(row._mapping)
            result["messages"] = [_message_json(m._mapping) for m in turns]
            return result


def _conversation_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "conversation",
        "user": row["user_id"],
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
