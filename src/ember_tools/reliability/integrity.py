"""Integrity checks of an Ember database, after a crash or at any time: the engine's own check, foreign keys,
and the store's invariants (every conversation is whole exchanges, numbered without gaps, ending with an
answer; each turn follows an earlier one of its conversation, and the branch shown ends at one of its turns),
on SQLite and PostgreSQL.

SQLite: `PRAGMA integrity_check`, `PRAGMA foreign_key_check`, and the journal settings durability rests on.
PostgreSQL: every table read in full, every foreign key checked for orphans, and every B-tree index checked
against its table with `amcheck` where the extension can be created (it is part of PostgreSQL's contrib).
The checks read only (amcheck aside, which is created in the database under test); they repair nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from ember.store.schema import conversations, messages


@dataclass
class Integrity:
    """The outcome of the checks: `problems` empty means all passed; `facts` are what was looked at."""

    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": self.problems, **self.facts}


def check(engine: sa.Engine) -> Integrity:
    """All the checks for `engine`'s backend, then the store's invariants."""
    result = Integrity()
    backend_checks = {"sqlite": _sqlite, "postgresql": _postgres}
    backend_checks[engine.dialect.name](engine, result)
    _orphans(engine, result)
    _exchanges(engine, result)
    _branches(engine, result)
    return result


def _sqlite(engine: sa.Engine, result: Integrity) -> None:
    with engine.connect() as conn:
        verdict = [row[0] for row in conn.exec_driver_sql("PRAGMA integrity_check")]
        if verdict != ["ok"]:
            result.problems += [f"integrity_check: {line}" for line in verdict[:20]]
        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
        result.problems += [f"foreign_key_check: {tuple(row)}" for row in broken[:20]]
        result.facts["journal_mode"] = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        synchronous = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        result.facts["synchronous"] = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(int(synchronous or 0))
    result.facts["checks"] = ["integrity_check", "foreign_key_check", "orphans", "exchanges"]


def _postgres(engine: sa.Engine, result: Integrity) -> None:
    tables = sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        for table in tables:  # a full read of every row: a damaged page fails here
            conn.exec_driver_sql(f'SELECT count(*), sum(length(t::text)) FROM "{table}" AS t').one()
        for setting in ("synchronous_commit", "fsync", "full_page_writes"):
            result.facts[setting] = conn.exec_driver_sql(f"SHOW {setting}").scalar()
    result.facts["tables_read"] = len(tables)
    result.facts["checks"] = ["full reads", "orphans", "exchanges", *(["amcheck"] if _amcheck(engine, result) else [])]


def _amcheck(engine: sa.Engine, result: Integrity) -> bool:
    """`bt_index_check` (with heap check) on every B-tree index of the public schema; False if unavailable."""
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS amcheck")
    except DBAPIError as exc:
        result.facts["amcheck"] = f"unavailable: {' '.join(str(exc.orig).split())[:200]}"
        return False
    query = """SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE a.amname = 'btree' AND n.nspname = 'public'"""
    with engine.connect() as conn:
        indexes = list(conn.exec_driver_sql(query).scalars())
        for index in indexes:
            try:
                conn.exec_driver_sql(f"SELECT bt_index_check('public.\"{index}\"'::regclass, true)")
            except DBAPIError as exc:
                result.problems.append(f"amcheck {index}: {' '.join(str(exc.orig).split())[:300]}")
                conn.rollback()
    result.facts["amcheck"] = f"{len(indexes)} indexes"
    return True


def _orphans(engine: sa.Engine, result: Integrity) -> None:
    """Rows whose foreign key names no row (found by reading the declared keys, so new tables are covered)."""
    found = sa.MetaData()
    found.reflect(engine)
    keys = 0
    with engine.connect() as conn:
        for table in found.tables.values():
            for fk in table.foreign_key_constraints:
                keys += 1
                pairs = list(zip(fk.columns, fk.elements, strict=True))
                parent = fk.referred_table
                exists = sa.exists().where(*(el.column == col for col, el in pairs))
                present = sa.and_(*(col.is_not(None) for col, _ in pairs))
                lonely = conn.scalar(
                    sa.select(sa.func.count()).select_from(table).where(present, ~exists.correlate(table))
                )
                if lonely:
                    result.problems.append(f"{lonely} rows of {table.name} name a missing {parent.name} row")
    result.facts["foreign_keys"] = keys


def _exchanges(engine: sa.Engine, result: Integrity) -> None:
    """Every conversation holds messages numbered 0..n-1 and ends with the assistant's answer: an exchange
    is stored whole or not at all."""
    per = (
        sa.select(
            messages.c.conversation_id,
            sa.func.count().label("n"),
            sa.func.min(messages.c.seq).label("first"),
            sa.func.max(messages.c.seq).label("last"),
        )
        .group_by(messages.c.conversation_id)
        .subquery()
    )
    last_role = (
        sa.select(messages.c.role)
        .where(messages.c.conversation_id == conversations.c.id, messages.c.seq == per.c.last)
        .scalar_subquery()
    )
    query = sa.select(conversations.c.id, per.c.n, per.c.first, per.c.last, last_role).select_from(
        conversations.outerjoin(per, per.c.conversation_id == conversations.c.id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    for cid, n, first, last, role in rows:
        if not n:
            result.problems.append(f"conversation {cid} has no messages")
        elif first != 0 or last != n - 1:
            result.problems.append(f"conversation {cid}: messages numbered {first}..{last}, {n} of them")
        elif role != "assistant":
            result.problems.append(f"conversation {cid} ends with a {role} message, not an answer")
    result.facts["conversations"] = len(rows)


def _branches(engine: sa.Engine, result: Integrity) -> None:
    """Every turn follows an earlier turn of its own conversation (or none: a first turn), and every
    conversation's branch shown ends at one of its turns."""
    earlier = messages.alias("earlier")
    follows = sa.exists().where(
        earlier.c.conversation_id == messages.c.conversation_id,
        earlier.c.seq == messages.c.parent_seq,
        earlier.c.seq < messages.c.seq,
    )
    shown = sa.exists().where(
        messages.c.conversation_id == conversations.c.id, messages.c.seq == conversations.c.active_seq
    )
    with engine.connect() as conn:
        astray = conn.scalar(
            sa.select(sa.func.count()).select_from(messages).where(messages.c.parent_seq.is_not(None), ~follows)
        )
        unshown = conn.scalar(sa.select(sa.func.count()).select_from(conversations).where(~shown))
    if astray:
        result.problems.append(f"{astray} messages follow no earlier turn of their conversation")
    if unshown:
        result.problems.append(f"{unshown} conversations show a branch that ends at none of their turns")
