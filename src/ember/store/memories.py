"""The facts a person asked Ember to remember (`memories` table). Each belongs to one person (`tenant`,
`person`, compared exactly, as everywhere in the store). Whether they may be kept and used is the person's
`memory` consent flag, which `ember.policy.memory` checks; this module only reads and writes rows."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, func, select

from ember.errors import NotFound, shown
from ember.store.schema import memories
from ember.store.sql import owned_by
from ember.types import Person

MAX_MEMORIES = 100  # per person: the oldest goes when a new one would pass this


@dataclass(frozen=True)
class Memory:
    id: str
    text: str
    created_at: float

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "object": "memory", "text": self.text, "created_at": int(self.created_at)}


class MemoryStore:
    """The `memories` table on the store's database; methods are synchronous (async callers use a thread)."""

    def __init__(self, db: Engine) -> None:
        self.db = db

    def of(self, person: Person) -> list[Memory]:
        """`person`'s memories, oldest first."""
        query = select(memories).where(*owned_by(memories, person)).order_by(memories.c.created_at, memories.c.id)
        with self.db.connect() as conn:
            return [Memory(r.id, r.text, r.created_at) for r in conn.execute(query)]

    def add(self, person: Person, text: str) -> Memory:
        """Keep `text` for `person` (the same text twice is kept once; past MAX_MEMORIES the oldest goes)."""
        memory = Memory("mem_" + uuid.uuid4().hex, text, time.time())
        with self.db.begin() as conn:
            same = select(memories).where(*owned_by(memories, person), memories.c.text == text)
            if (row := conn.execute(same).first()) is not None:
                return Memory(row.id, row.text, row.created_at)
            row_values = {"id": memory.id, "tenant": person.tenant, "person": person.name, "text": text}
            conn.execute(memories.insert().values(**row_values, created_at=memory.created_at))
            held = conn.scalar(select(func.count()).select_from(memories).where(*owned_by(memories, person))) or 0
            if held > MAX_MEMORIES:
                oldest = select(memories.c.id).where(*owned_by(memories, person)).order_by(memories.c.created_at)
                gone = [r.id for r in conn.execute(oldest.limit(held - MAX_MEMORIES))]
                conn.execute(delete(memories).where(memories.c.id.in_(gone)))
        return memory

    def delete(self, person: Person, memory_id: str) -> None:
        """Forget one of `person`'s memories (NotFound if none of theirs has that id)."""
        with self.db.begin() as conn:
            mine = delete(memories).where(memories.c.id == memory_id, *owned_by(memories, person))
            if not conn.execute(mine).rowcount:
                raise NotFound(f"memory {shown(memory_id)} not found", param="memory_id")

    def export_person(self, person: Person, *, tenant: bool) -> list[dict[str, Any]]:
        """The person's (with `tenant`, everyone's in their tenant) memories, oldest first."""
        query = select(memories).where(*owned_by(memories, person, whole=tenant)).order_by(memories.c.created_at)
        with self.db.connect() as conn:
            return [
                {**Memory(r.id, r.text, r.created_at).as_dict(), "user": Person(r.tenant, r.person).label}
                for r in conn.execute(query)
            ]

    def delete_person(self, person: Person, *, tenant: bool) -> int:
        """Forget the person's (with `tenant`, everyone's in their tenant) memories; how many went."""
        with self.db.begin() as conn:
            return int(conn.execute(delete(memories).where(*owned_by(memories, person, whole=tenant))).rowcount)
