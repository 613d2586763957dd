"""SqlStore and its migrations on real databases: a SQLite file (WAL) and, where it runs, the local PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ember.errors import NotFound
from ember.store.migrations import MIGRATIONS, migrate
from ember.store.schema import conversations, messages
from ember.store.sql import TITLE_CHARS, SqlStore, StoredAnswer, new_conversation_id, open_db
from ember.types import Message, Person, Usage
from ember_tools.reliability.durability import Unreachable, postgres_database

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL, dropped afterwards; skipped (or failed, when required) if
    there is none."""
    try:
        with postgres_database(PG_ADMIN_URL) as url:
            yield url
    except Unreachable as exc:
        reason = f"PostgreSQL is not reachable at 127.0.0.1:5432 ({exc})"
        if os.environ.get("EMBER_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason}, and EMBER_REQUIRE_POSTGRES=1")
        pytest.skip(f"{reason}; set EMBER_REQUIRE_POSTGRES=1 to make this a failure")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'ember.db'}"
    else:
        yield from _postgres_url()


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    s = SqlStore(db_url)
    try:
        yield s
    finally:
        s.close()


def ask(
    store: SqlStore,
    conversation_id: str,
    prompt: list[Message],
    content: str,
    *,
    user: str = "alice",
    mode: str = "chat",
    usage: Usage | None = None,
    **answer: Any,
) -> None:
    store.save_exchange(
        conversation_id=conversation_id,
        user=Person("", user),
        mode=mode,
        prompt=prompt,
        answer=StoredAnswer(content, usage=usage, **answer),
    )


def rows(store: SqlStore, query: Any) -> list[tuple[Any, ...]]:
    with store.db.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def message_count(store: SqlStore, conversation_id: str) -> int:
    with store.db.connect() as conn:
        count = conn.scalar(
            sa.select(sa.func.count()).select_from(messages).where(messages.c.conversation_id == conversation_id)
        )
    assert isinstance(count, int)
    return count


def without_times(conversation: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in conversation.items() if k not in ("created_at", "updated_at")}
    if "messages" in out:
        out["messages"] = [{k: v for k, v in m.items() if k != "created_at"} for m in out["messages"]]
    return out


# --- backend and migrations --------------------------------------------------------------------------------


def test_sqlite_file_uses_wal_and_enforces_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "ember.db"
    store = SqlStore(f"sqlite:///{path}")
    try:
        assert path.is_file()  # the parent directories were created
        with store.db.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    finally:
        store.close()
    assert (tmp_path / "nested" / "dir" / "ember.db").is_file()


def test_postgres_url_maps_to_psycopg() -> None:
    engine = open_db("postgresql://postgres@127.0.0.1:5432/whatever")
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        assert engine.url.database == "whatever"
    finally:
        engine.dispose()


def test_migrate_is_idempotent(db_url: str) -> None:
    engine = open_db(db_url)
    try:
        names = [name for name, _ in MIGRATIONS]
        assert migrate(engine) == names and names[0] == "0001_conversations"
        assert migrate(engine) == []
        with engine.connect() as conn:
            ledger = conn.execute(sa.text("SELECT name, applied_at FROM _migrations ORDER BY name")).all()
        assert [name for name, _ in ledger] == sorted(names)

        first = SqlStore(db_url)  # migrations already applied: nothing to do, no error
        second = SqlStore(db_url)
        try:
            assert migrate(second.db) == []
            with second.db.connect() as conn:
                assert conn.execute(sa.text("SELECT name, applied_at FROM _migrations")).all() == ledger
                tables = set(sa.inspect(conn).get_table_names())
            assert {"_migrations", "conversations", "messages"} <= tables
        finally:
            first.close()
            second.close()
    finally:
        engine.dispose()


# --- conversations ------------------------------------------------------------------------------------------


def test_save_exchange_then_get_conversation(store: SqlStore) -> None:
    cid = new_conversation_id()
    question = "What is the capital of France? " * 5
    ask(
        store,
        cid,
        [Message("system", "Be brief."), Message("user", question)],
        "Paris.",
        mode="chat-fast",
        usage=Usage(prompt_tokens=21, completion_tokens=3),
        reasoning="The user asks about France.",
        finish_reason="stop",
    )

    got = store.get_conversation(cid, Person("", "alice"))

    assert without_times(got) == {
        "id": cid,
        "object": "conversation",
        "user": "alice",
        "mode": "chat-fast",
        "title": question[:TITLE_CHARS],
        "messages": [
            {"role": "system", "content": "Be brief.", "seq": 0, "parent": None, "siblings": [0]},
            {"role": "user", "content": question, "seq": 1, "parent": 0, "siblings": [1]},
            {
                "role": "assistant",
                "content": "Paris.",
                "seq": 2,
                "parent": 1,
                "siblings": [2],
                "reasoning_content": "The user asks about France.",
                "finish_reason": "stop",
                "usage": {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24},
            },
        ],
    }
    assert isinstance(got["created_at"], int) and got["created_at"] > 0
    assert got["updated_at"] == got["created_at"]
    assert all(isinstance(m["created_at"], int) for m in got["messages"])


def test_answer_without_usage_or_reasoning(store: SqlStore) -> None:
    cid = new_conversation_id()
    ask(store, cid, [Message("user", "")], "", finish_reason="length")
    got = store.get_conversation(cid, Person("", "alice"))
    assert got["title"] == "(untitled)"
    assert without_times(got)["messages"] == [
        {"role": "user", "content": "", "seq": 0, "parent": None, "siblings": [0]},
        {
            "role": "assistant",
            "content": "",
            "seq": 1,
            "parent": 0,
            "siblings": [1],
            "finish_reason": "length",
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        },
    ]


def test_a_nul_in_model_output_is_stored_as_a_replacement_character(store: SqlStore) -> None:
    cid = new_conversation_id()
    ask(store, cid, [Message("user", "hi")], "a\x00b")
    assert store.get_conversation(cid, Person("", "alice"))["messages"][-1]["content"] == "a\ufffdb"


def test_list_conversations_is_per_user_and_newest_first(store: SqlStore) -> None:
    a1, b1, a2, a3 = (new_conversation_id() for _ in range(4))
    ask(store, a1, [Message("user", "alice one")], "1")
    ask(store, b1, [Message("user", "bob one")], "1", user="bob")
    ask(store, a2, [Message("user", "alice two")], "2")
    ask(store, a3, [Message("user", "alice three")], "3")

    alice = store.list_conversations(Person("", "alice"))
    assert [c["id"] for c in alice] == [a3, a2, a1]
    assert [c["title"] for c in alice] == ["alice three", "alice two", "alice one"]
    assert {c["user"] for c in alice} == {"alice"}
    assert [c["id"] for c in store.list_conversations(Person("", "bob"))] == [b1]
    assert store.list_conversations(Person("", "carol")) == []
    assert [c["id"] for c in store.list_conversations(Person("", "alice"), limit=2)] == [a3, a2]

    # Continuing the oldest one makes it the newest.
    ask(store, a1, [Message("user", "alice one"), Message("assistant", "1"), Message("user", "more")], "4")
    assert [c["id"] for c in store.list_conversations(Person("", "alice"))] == [a1, a3, a2]
    assert [c["id"] for c in store.list_conversations(Person("", "bob"))] == [b1]


def test_get_conversation_of_another_user_is_not_found(store: SqlStore) -> None:
    cid = new_conversation_id()
    ask(store, cid, [Message("user", "secret")], "ok")

    with pytest.raises(NotFound) as exc:
        store.get_conversation(cid, Person("", "mallory"))
    assert exc.value.status == 404
    assert exc.value.param == "conversation_id"
    assert "secret" not in str(exc.value)

    with pytest.raises(NotFound):
        store.get_conversation(new_conversation_id(), Person("", "alice"))
    assert store.get_conversation(cid, Person("", "alice"))["id"] == cid


def test_continuing_appends_only_the_new_turns(store: SqlStore) -> None:
    cid = new_conversation_id()
    history = [Message("system", "sys"), Message("user", "q1")]
    ask(store, cid, history, "a1", usage=Usage(5, 1), finish_reason="stop")
    first = store.get_conversation(cid, Person("", "alice"))

    history += [Message("assistant", "a1"), Message("user", "q2")]
    ask(store, cid, history, "a2", mode="chat-fast", usage=Usage(9, 2), finish_reason="stop")
    history += [Message("assistant", "a2"), Message("user", "q3")]
    ask(store, cid, history, "a3", mode="chat-fast", usage=Usage(13, 4), finish_reason="length")

    got = store.get_conversation(cid, Person("", "alice"))
    assert [(m["role"], m["content"]) for m in got["messages"]] == [
        ("system", "sys"),
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
        ("assistant", "a2"),
        ("user", "q3"),
        ("assistant", "a3"),
    ]
    assistants = [m for m in got["messages"] if m["role"] == "assistant"]
    assert [m["usage"]["prompt_tokens"] for m in assistants] == [5, 9, 13]
    assert [m["finish_reason"] for m in assistants] == ["stop", "stop", "length"]
    assert got["title"] == "q1"  # kept from the first exchange
    assert got["mode"] == "chat-fast"  # the latest mode
    assert got["created_at"] == first["created_at"]

    seqs = rows(store, sa.select(messages.c.seq).where(messages.c.conversation_id == cid).order_by(messages.c.id))
    assert [s for (s,) in seqs] == list(range(7))
    assert rows(store, sa.select(sa.func.count()).select_from(conversations)) == [(1,)]


def test_owner_of(store: SqlStore) -> None:
    cid = new_conversation_id()
    ask(store, cid, [Message("user", "hi")], "hello", user="bob")
    assert store.owner_of(cid) == Person("", "bob")
    assert store.owner_of(new_conversation_id()) is None


def test_deleting_a_conversation_cascades_to_its_messages(store: SqlStore) -> None:
    gone, kept = new_conversation_id(), new_conversation_id()
    ask(store, gone, [Message("user", "q1")], "a1")
    ask(store, gone, [Message("user", "q1"), Message("assistant", "a1"), Message("user", "q2")], "a2")
    ask(store, kept, [Message("user", "other")], "answer")
    assert (message_count(store, gone), message_count(store, kept)) == (4, 2)

    with store.db.begin() as conn:
        assert conn.execute(conversations.delete().where(conversations.c.id == gone)).rowcount == 1

    assert message_count(store, gone) == 0
    assert message_count(store, kept) == 2
    assert store.owner_of(gone) is None
    with pytest.raises(NotFound):
        store.get_conversation(gone, Person("", "alice"))


def test_messages_need_an_existing_conversation(store: SqlStore) -> None:
    orphan = {"conversation_id": "conv_nope", "seq": 0, "role": "user", "content": "x", "created_at": 0.0}
    with pytest.raises(IntegrityError), store.db.begin() as conn:
        conn.execute(messages.insert().values(**orphan))
    assert message_count(store, "conv_nope") == 0


def test_seq_is_unique_per_conversation(store: SqlStore) -> None:
    cid = new_conversation_id()
    ask(store, cid, [Message("user", "q")], "a")
    duplicate = {"conversation_id": cid, "seq": 1, "role": "user", "content": "dup", "created_at": 0.0}
    with pytest.raises(IntegrityError), store.db.begin() as conn:
        conn.execute(messages.insert().values(**duplicate))
    assert message_count(store, cid) == 2


def test_schema_describes_what_the_migrations_built(db_url: str) -> None:
    """schema.py (for queries) and the migrations (for DDL) must agree, table by table, column by column."""
    from ember.store.schema import metadata

    engine = open_db(db_url)
    try:
        migrate(engine)
        built = sa.MetaData()
        built.reflect(engine)
        for table in metadata.tables.values():
            assert table.name in built.tables, table.name
            assert {c.name for c in table.columns} == {c.name for c in built.tables[table.name].columns}, table.name
    finally:
        engine.dispose()


def test_tenant_migration_keeps_every_row_under_an_exact_owner(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """0005 turns `owner/user` strings into (tenant, name) columns: rows keep their data, a bare name stays
    the operator's, and a cross-tenant friendship (only an operator import could make one) is dropped."""
    from ember.shopping.data import ShoppingData
    from ember.store import migrations

    engine = open_db(db_url)
    try:
        monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:4])
        migrate(engine)
        with engine.begin() as conn:
            for n, user in enumerate(("acme/bob", "ben", "Acme/bob")):
                conn.execute(
                    sa.text("INSERT INTO conversations VALUES (:id, :user, 'ember-instant', 't', 1.0, 2.0)"),
                    {"id": f"conv_{n}", "user": user},
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO messages (conversation_id, seq, role, content, created_at) "
                        "VALUES (:c, 0, 'user', :t, 1.0)"
                    ),
                    {"c": f"conv_{n}", "t": f"words of {user}"},
                )
            conn.execute(sa.text("INSERT INTO consent VALUES ('acme/bob', true, true, false, 1.0)"))
            conn.execute(sa.text("INSERT INTO catalog_items VALUES ('i1', 'T', 'D', 'C', 1.0, 'EUR', '{}', NULL, 1.0)"))
            conn.execute(
                sa.text("INSERT INTO events (person, item_id, kind, ts) VALUES ('acme/bob', 'i1', 'like', 5.0)")
            )
            conn.execute(sa.text("INSERT INTO posts VALUES ('p1', 'acme/bob', 'hi', 'people', 1.0)"))
            conn.execute(sa.text("INSERT INTO post_items VALUES ('p1', 'i1')"))
            for person in ("acme/carol", "zed"):
                conn.execute(sa.text("INSERT INTO post_audience VALUES ('p1', :p)"), {"p": person})
            for a, b in (("acme/bob", "acme/carol"), ("acme/carol", "acme/bob"), ("acme/bob", "zed")):
                conn.execute(sa.text("INSERT INTO friendships VALUES (:a, :b, 1.0)"), {"a": a, "b": b})
        monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS)
        assert migrate(engine) == [name for name, _ in MIGRATIONS[4:]]  # 0005_tenants and every one after it
    finally:
        engine.dispose()
    store = SqlStore(db_url)
    try:
        bob, carol = Person("acme", "bob"), Person("acme", "carol")
        assert [c["id"] for c in store.list_conversations(bob)] == ["conv_0"]
        assert store.get_conversation("conv_0", bob)["messages"][0]["content"] == "words of acme/bob"
        assert [c["id"] for c in store.list_conversations(Person("Acme", "bob"))] == ["conv_2"]
        assert store.owner_of("conv_1") == Person("", "ben")  # a bare name: the operator's
        flags = {
            "history": True,
            "personalisation": True,
            "health_storage": False,
            "memory": False,
            "media_storage": False,
        }
        assert store.get_consent(bob) == flags
        data = ShoppingData(store.db)
        assert [(e.person, e.item_id) for e in data.person_events(bob)] == [(bob, "i1")]
        seen = data.post("p1", carol)
        assert seen is not None and seen.author == bob and seen.items == ("i1",)
        assert data.post("p1", Person("", "zed")) is None
        held = data.export_person(bob, tenant=False)
        assert held["friendships"] == [{"user": "acme/bob", "friend": "acme/carol"}]  # (bob, zed) crossed tenants
    finally:
        store.close()


def test_saving_into_another_persons_conversation_writes_nothing(store: SqlStore) -> None:
    """Two owners answering into one conversation id at once appended one's answer to the other's."""
    cid = new_conversation_id()
    ask(store, cid, [Message("user", "mine")], "ok")  # alice's
    for intruder in (Person("", "Alice"), Person("alice", ""), Person("alice", "alice")):
        with pytest.raises(NotFound):
            store.save_exchange(
                conversation_id=cid, user=intruder, mode="chat", prompt=[Message("user", "x")], answer=StoredAnswer("y")
            )
    assert message_count(store, cid) == 2 and store.owner_of(cid) == Person("", "alice")
