"""Privacy: consent flags, export, erasure and retention in the store (SQLite and PostgreSQL) and through
the API on the fake engine; `history: false` stores nothing; `ember privacy purge` (the logs:
test_privacy_logs.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.config import Settings
from ember.errors import InvalidRequest
from ember.policy import privacy
from ember.policy.keys import KeyStore
from ember.store.consent import DEFAULT_CONSENT, Consent, consent_of
from ember.store.schema import api_keys, conversations, messages
from ember.store.sql import SqlStore, StoredAnswer, new_conversation_id
from ember.types import Message, Person

from .conftest import free_port, make_settings, run_cli, sse_events, wait_healthy, who
from .test_store import _postgres_url, message_count

DEFAULTS = {"history": True, "personalisation": False, "health_storage": False, "memory": False, "media_storage": False}
FAKE = {"chat_fast": {"engine": "fake", "model": "fake", "ctx_size": 256}}
DAY = 86_400.0
SHOPPING: dict[str, Any] = {"events": [], "posts": [], "friendships": [], "named_in_posts": []}
NO_OTHERS = {"events": 0, "posts": 0, "post_links": 0, "friendships": 0, "responses": 0, "memories": 0, "media": 0}
EMPTY: dict[str, Any] = {
    "consent": {},
    "conversations": [],
    "responses": [],
    "memories": [],
    "media": [],
    "api_keys": [],
    **SHOPPING,
}  # erased


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """A fresh store on each backend (the Postgres database is dropped afterwards)."""
    urls = iter([f"sqlite:///{tmp_path / 'db' / 'ember.db'}"]) if request.param == "sqlite" else _postgres_url()
    s = SqlStore(next(urls))
    try:
        yield s
    finally:
        s.close()
        for _ in urls:  # resumes the Postgres generator, which drops its database
            pass


def talk(store: SqlStore, user: str, *texts: str) -> str:
    """A stored conversation of `user` (as `who` reads it): one exchange per text."""
    cid = new_conversation_id()
    history: list[Message] = []
    for text in texts:
        history.append(Message("user", text))
        store.save_exchange(
            conversation_id=cid, user=who(user), mode="chat", prompt=history, answer=StoredAnswer(f"re: {text}")
        )
        history.append(Message("assistant", f"re: {text}"))
    return cid


def references(engine: sa.Engine, person: Person, *, tenant: bool) -> list[str]:
    """`table.column = value` for every string cell, in every table with a tenant, that names `person` in
    their tenant (with `tenant`, every row of the tenant), and the API keys of the tenant's owner."""
    built = sa.MetaData()
    built.reflect(engine)
    found = []
    with engine.connect() as conn:
        for table in built.tables.values():
            if "tenant" not in table.columns:
                continue
            for column in table.columns:
                if not isinstance(column.type, sa.String) or (column.name == "tenant") != tenant:
                    continue
                match = column == (person.tenant if tenant else person.name)
                query = sa.select(column).where(match, table.c.tenant == person.tenant)
                found += [f"{table.name}.{column.name} = {v}" for v in conn.scalars(query)]
        if tenant:
            owners = conn.scalars(sa.select(api_keys.c.owner).where(api_keys.c.owner == person.tenant))
            found += [f"api_keys.owner = {v}" for v in owners]
    return found


def update(**flags: Any) -> privacy.ConsentUpdate:
    return privacy.ConsentUpdate.model_validate(flags)


# --- store level, both backends ------------------------------------------------------------------------------


def test_consent_defaults_then_changes_one_flag_at_a_time(store: SqlStore) -> None:
    assert store.get_consent(Person("", "alice")) is None
    assert consent_of(store, Person("", "alice")).as_dict() == DEFAULTS

    assert privacy.set_consent(store, Person("", "alice"), update(history=False)).as_dict() == {
        **DEFAULTS,
        "history": False,
    }
    changed = privacy.set_consent(store, Person("", "alice"), update(personalisation=True, health_storage=True))
    assert changed == Consent(history=False, personalisation=True, health_storage=True)
    assert store.get_consent(Person("", "alice")) == changed.as_dict()
    assert consent_of(store, Person("", "bob")) == DEFAULT_CONSENT
    with pytest.raises(InvalidRequest, match="at least one"):
        privacy.set_consent(store, Person("", "carol"), update())
    assert store.get_consent(Person("", "carol")) is None


def test_concurrent_first_writes_of_different_flags_all_survive(store: SqlStore) -> None:
    wanted = {**{flag: True for flag in DEFAULTS}, "history": False}
    changes = [{flag: on} for flag, on in wanted.items()]
    for n in range(5):
        person = Person("", f"p{n}")
        barrier = threading.Barrier(len(changes))

        def write(change: dict[str, bool], person: Person = person, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            store.set_consent(person, change, DEFAULTS)

        threads = [threading.Thread(target=write, args=(c,)) for c in changes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert store.get_consent(person) == wanted


def test_export_holds_everything_about_the_person_and_nothing_else(store: SqlStore) -> None:
    first = talk(store, "alice", "my first secret", "and a second")
    second = talk(store, "alice", "another topic")
    talk(store, "bob", "bob's words")
    talk(store, "alice/x", "a namespaced person is someone else")
    store.set_consent(Person("", "alice"), {"health_storage": True}, DEFAULTS)

    got = privacy.export(store, privacy.Subject(Person("", "alice")), now=1_700_000_000)

    assert set(got) == {"object", "id", "exported_at", *EMPTY} - {"api_keys"}
    assert (got["object"], got["id"], got["exported_at"]) == ("person.export", "alice", 1_700_000_000)
    assert got["consent"] == {"alice": {**DEFAULTS, "health_storage": True}}
    assert [c["id"] for c in got["conversations"]] == [first, second]
    assert {c["user"] for c in got["conversations"]} == {"alice"}
    assert [(m["role"], m["content"]) for m in got["conversations"][0]["messages"]] == [
        ("user", "my first secret"),
        ("assistant", "re: my first secret"),
        ("user", "and a second"),
        ("assistant", "re: and a second"),
    ]
    assert got["conversations"][1] == store.get_conversation(second, Person("", "alice"))


def test_delete_person_removes_their_rows_only(store: SqlStore) -> None:
    talk(store, "alice", "one", "two")
    talk(store, "alice", "three")
    kept = talk(store, "bob", "bob stays")
    talk(store, "alice/x", "so does a namespaced person")
    store.set_consent(Person("", "alice"), {"history": False}, DEFAULTS)
    store.set_consent(Person("", "bob"), {"personalisation": True}, DEFAULTS)

    removed = privacy.forget(store, privacy.Subject(Person("", "alice")))

    assert removed == {
        "object": "person.deleted",
        "id": "alice",
        "deleted": True,
        "removed": {"messages": 6, "conversations": 2, "consent": 1, "api_keys": 0, **NO_OTHERS},
    }
    assert references(store.db, Person("", "alice"), tenant=False) == []
    held = privacy.export(store, privacy.Subject(Person("", "alice")))
    assert (held["consent"], held["conversations"]) == ({}, [])
    assert store.get_conversation(kept, Person("", "bob"))["messages"][0]["content"] == "bob stays"
    assert store.get_consent(Person("", "bob")) == {**DEFAULTS, "personalisation": True}
    assert len(store.list_conversations(Person("alice", "x"))) == 1
    assert set(privacy.forget(store, privacy.Subject(Person("", "alice")))["removed"].values()) == {0}


def test_an_owner_is_erased_with_its_people_and_keys(store: SqlStore, tmp_path: Path) -> None:
    keys = KeyStore(store.db, Settings(data_dir=tmp_path))
    for key_owner in ("a_c", "a_c", "abc", "a_cd"):
        keys.create(key_owner, ("chat",), "free")
    for person in ("a_c/", "a_c/bob", "a_c/carol", "abc/", "abc/dan", "a_cd/", "a_cd/eve", "a_c", "x/a_c"):
        talk(store, person, f"words of {person}")
        store.set_consent(who(person), {"personalisation": True}, DEFAULTS)
    owner = privacy.Subject(Person("a_c", ""), tenant=True)

    held = privacy.export(store, owner)
    assert sorted(held["consent"]) == ["a_c", "a_c/bob", "a_c/carol"]  # '_' is not a wildcard
    assert sorted(c["user"] for c in held["conversations"]) == ["a_c", "a_c/bob", "a_c/carol"]
    assert [k["owner"] for k in held["api_keys"]] == ["a_c", "a_c"]
    assert all("hash" not in k and k["prefix"].startswith("ember-") for k in held["api_keys"])

    removed = {"messages": 6, "conversations": 3, "consent": 3, "api_keys": 2, **NO_OTHERS}
    assert privacy.forget(store, owner)["removed"] == removed
    assert references(store.db, Person("a_c", ""), tenant=True) == []
    assert {k: v for k, v in privacy.export(store, owner).items() if k in EMPTY} == EMPTY
    assert sorted(k["owner"] for k in keys.list()) == ["a_cd", "abc"]
    for person in ("abc/", "abc/dan", "a_cd/", "a_cd/eve", "a_c", "x/a_c"):  # a local a_c is not the owner a_c
        assert len(store.list_conversations(who(person))) == 1 and store.get_consent(who(person)) is not None


def age(store: SqlStore, conversation_id: str, updated_at: float) -> None:
    with store.db.begin() as conn:
        conn.execute(conversations.update().where(conversations.c.id == conversation_id).values(updated_at=updated_at))


def test_retention_purges_what_was_last_updated_before_the_cutoff(store: SqlStore, tmp_path: Path) -> None:
    now = 1_800_000_000.0
    old, edge, fresh = talk(store, "alice", "old", "older"), talk(store, "bob", "edge"), talk(store, "alice", "new")
    age(store, old, now - 8 * DAY)
    age(store, edge, now - 7 * DAY)  # exactly at the cutoff: kept
    age(store, fresh, now - 1)

    assert privacy.purge_expired(store, Settings(data_dir=tmp_path), now) == privacy.Purged()  # no period: no-op
    week = Settings(data_dir=tmp_path, retention_days=7)
    assert privacy.purge_expired(store, week, now) == privacy.Purged(1, 4, now - 7 * DAY)

    assert store.owner_of(old) is None
    assert [c["id"] for c in store.list_conversations(Person("", "alice"))] == [fresh]
    assert store.list_conversations(Person("", "bob"))[0]["id"] == edge
    assert (
        privacy.export(store, privacy.Subject(Person("", "alice")))["conversations"][0]["messages"][0]["content"]
        == "new"
    )
    assert message_count(store, old) == 0
    assert privacy.purge_expired(store, week, now) == privacy.Purged(0, 0, now - 7 * DAY)
    assert privacy.purge_expired(store, week.model_copy(update={"retention_days": 0.5}), now).conversations == 1


async def purged(store: SqlStore, person: Person) -> None:
    while store.list_conversations(person):  # noqa: ASYNC110 - the database has no event to wait on
        await anyio.sleep(0.01)


async def test_keep_purging_runs_at_once_and_again(store: SqlStore, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, retention_days=1)
    age(store, talk(store, "alice", "old"), time.time() - 2 * DAY)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(privacy.keep_purging, store, settings, 0.02)
            await purged(store, Person("", "alice"))
            age(store, talk(store, "alice", "old too"), time.time() - 2 * DAY)  # the next round takes it
            await purged(store, Person("", "alice"))
            tg.cancel_scope.cancel()
    await privacy.keep_purging(store, Settings(data_dir=tmp_path), 0.02)  # no period: returns at once


# --- API, fake engine ----------------------------------------------------------------------------------------


def chat(
    client: TestClient | httpx.Client, text: str, headers: dict[str, str] | None = None, **over: Any
) -> httpx.Response:
    body = {"model": "ember-instant", "messages": [{"role": "user", "content": text}], **over}
    return client.post("/v1/chat/completions", json=body, headers=headers)


def test_me_shows_the_person_and_patch_changes_flags(client: TestClient) -> None:
    assert client.get("/v1/me").json() == {"object": "person", "id": "anonymous", "consent": DEFAULTS}
    resp = client.patch("/v1/me/consent", params={"user": "carol"}, json={"personalisation": True})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"object": "person", "id": "carol", "consent": {**DEFAULTS, "personalisation": True}}
    resp = client.patch("/v1/me/consent?user=carol", json={"history": False, "personalisation": False})
    assert resp.json()["consent"] == {**DEFAULTS, "history": False}
    assert client.get("/v1/me", params={"user": "carol"}).json()["consent"] == {**DEFAULTS, "history": False}
    assert client.get("/v1/me").json()["consent"] == DEFAULTS


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"history": "false"}, "history"),
        ({"history": 0}, "history"),
        ({"personalisation": None}, "personalisation"),
        ({"health_storage": [True]}, "health_storage"),
        ({"histroy": False}, "histroy"),
        ([True], None),
        ("true", None),
        ({}, None),
    ],
)
def test_consent_body_is_strict(client: TestClient, body: Any, param: str | None) -> None:
    resp = client.patch("/v1/me/consent", json=body)
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param
    assert client.get("/v1/me").json()["consent"] == DEFAULTS


def stored_messages(client: TestClient) -> int:
    store: SqlStore = client.app.state.pipeline.store  # type: ignore[attr-defined]
    with store.db.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(messages)) or 0)


def test_history_off_answers_but_stores_nothing(client: TestClient) -> None:
    client.patch("/v1/me/consent", params={"user": "dora"}, json={"history": False})

    resp = chat(client, "do not keep this", user="dora")
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "You said: do not keep this"
    assert not resp.headers.get("x-ember-conversation-id")  # no stored conversation to continue
    with client.stream("POST", "/v1/chat/completions", json={
        "model": "ember-instant", "messages": [{"role": "user", "content": "nor this"}], "user": "dora", "stream": True
    }) as streamed:  # fmt: skip
        events = sse_events(list(streamed.iter_lines()))
    assert (
        "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"])
        == "You said: nor this"
    )
    assert not streamed.headers.get("x-ember-conversation-id")
    assert stored_messages(client) == 0
    assert client.get("/v1/conversations", params={"user": "dora"}).json()["data"] == []

    refused = chat(client, "continue", user="dora", conversation_id=new_conversation_id())
    assert refused.status_code == 400
    err = refused.json()["error"]
    assert (err["code"], err["param"]) == ("history_off", "conversation_id") and "history" in err["message"]

    kept = chat(client, "keep mine", user="erin")  # others are unaffected
    assert client.get(f"/v1/conversations/{kept.headers['x-ember-conversation-id']}?user=erin").status_code == 200
    client.patch("/v1/me/consent", params={"user": "dora"}, json={"history": True})
    again = chat(client, "now keep it", user="dora")
    assert (
        client.get("/v1/conversations", params={"user": "dora"}).json()["data"][0]["id"]
        == again.headers["x-ember-conversation-id"]
    )
    assert stored_messages(client) == 4


def test_history_turned_off_during_a_stream_stores_nothing(tmp_path: Path) -> None:
    fake = {"engine": "fake", "model": "fake", "ctx_size": 256, "options": {"delay_s": 0.05}}
    app = create_app(make_settings(tmp_path, chat_fast=fake))
    with serve(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        body = {"model": "ember-instant", "messages": [{"role": "user", "content": "a b c d e f g h"}]}
        with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as resp:
            lines = resp.iter_lines()
            assert next(line for line in lines if line.startswith("data: "))
            assert http.patch("/v1/me/consent", json={"history": False}).status_code == 200
            assert sse_events(list(lines))[-1] == "[DONE]"
        assert resp.headers["x-ember-conversation-id"]  # consent was on when the request began
        assert http.get(f"/v1/conversations/{resp.headers['x-ember-conversation-id']}").status_code == 404
        assert http.get("/v1/conversations").json()["data"] == []


def test_export_and_delete_through_the_api(client: TestClient) -> None:
    first = chat(client, "frank's first question", user="frank").headers["x-ember-conversation-id"]
    chat(client, "grace's question", user="grace")
    client.patch("/v1/me/consent", params={"user": "frank"}, json={"health_storage": True})

    held = client.get("/v1/me/export", params={"user": "frank"}).json()
    assert held["id"] == "frank" and "api_keys" not in held
    assert held["consent"] == {"frank": {**DEFAULTS, "health_storage": True}}
    assert [c["id"] for c in held["conversations"]] == [first]
    assert [m["content"] for m in held["conversations"][0]["messages"]] == [
        "frank's first question",
        "You said: frank's first question",
    ]

    gone = client.delete("/v1/me", params={"user": "frank"})
    assert gone.status_code == 200, gone.text
    assert gone.json() == {
        "object": "person.deleted",
        "id": "frank",
        "deleted": True,
        "removed": {"messages": 2, "conversations": 1, "consent": 1, "api_keys": 0, **NO_OTHERS},
    }
    store: SqlStore = client.app.state.pipeline.store  # type: ignore[attr-defined]
    assert references(store.db, Person("", "frank"), tenant=False) == []
    empty = client.get("/v1/me/export", params={"user": "frank"}).json()
    assert (empty["consent"], empty["conversations"]) == ({}, [])
    assert client.get("/v1/me", params={"user": "frank"}).json()["consent"] == DEFAULTS
    assert client.get(f"/v1/conversations/{first}", params={"user": "frank"}).status_code == 404
    assert len(client.get("/v1/conversations", params={"user": "grace"}).json()["data"]) == 1


def test_erased_text_is_left_in_neither_the_database_file_nor_its_log(client: TestClient, tmp_path: Path) -> None:
    """SQLite kept erased rows in its write-ahead log until a checkpoint, and in free pages after one."""
    secret = "quasar heliotrope " * 50  # long enough to fill a page of its own
    chat(client, secret, user="ivy")
    chat(client, "kept words", user="jon")
    files = [tmp_path / "data" / "ember.db", tmp_path / "data" / "ember.db-wal"]
    assert any(b"quasar heliotrope" in f.read_bytes() for f in files if f.exists())
    assert client.delete("/v1/me", params={"user": "ivy"}).status_code == 200
    assert not any(b"quasar heliotrope" in f.read_bytes() for f in files if f.exists())
    assert client.get("/v1/conversations", params={"user": "jon"}).json()["data"][0]["title"] == "kept words"


def keyed_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, **FAKE).model_copy(update={"require_keys": True})


def make_key(settings: Settings, owner: str, scopes: tuple[str, ...] = ("chat", "audio")) -> str:
    store = SqlStore(settings.db_url)
    try:
        return KeyStore(store.db, settings).create(owner, scopes, "local")[0]
    finally:
        store.close()


def test_a_key_owner_erases_itself_its_people_and_its_keys(tmp_path: Path) -> None:
    settings = keyed_settings(tmp_path)
    acme, spare = make_key(settings, "acme", ("chat", "admin")), make_key(settings, "acme")
    other = make_key(settings, "acme2")
    with TestClient(create_app(settings)) as client:
        as_acme, as_spare = {"Authorization": f"Bearer {acme}"}, {"Authorization": f"Bearer {spare}"}
        for method in ("GET", "DELETE"):  # the whole owner (its people and keys) takes the admin scope
            refused = client.request(method, "/v1/me/export" if method == "GET" else "/v1/me", headers=as_spare)
            assert refused.status_code == 403 and "admin" in refused.json()["error"]["message"]
        assert chat(client, "acme itself", as_acme).status_code == 200
        assert chat(client, "bob at acme", as_acme, user="bob").status_code == 200
        assert chat(client, "carol at acme", as_acme, user="carol").status_code == 200
        assert client.patch("/v1/me/consent?user=bob", headers=as_acme, json={"personalisation": True}).is_success
        assert chat(client, "not acme's", {"Authorization": f"Bearer {other}"}).status_code == 200

        bob = client.get("/v1/me/export?user=bob", headers=as_acme).json()
        assert bob["id"] == "acme/bob" and "api_keys" not in bob and list(bob["consent"]) == ["acme/bob"]
        held = client.get("/v1/me/export", headers=as_acme).json()
        assert sorted(c["user"] for c in held["conversations"]) == ["acme", "acme/bob", "acme/carol"]
        assert len(held["api_keys"]) == 2 and all("hash" not in k for k in held["api_keys"])
        assert acme not in str(held) and spare not in str(held)

        assert client.delete("/v1/me?user=carol", headers=as_acme).json()["removed"]["api_keys"] == 0
        removed = client.delete("/v1/me", headers=as_acme).json()["removed"]
        assert removed == {"messages": 4, "conversations": 2, "consent": 1, "api_keys": 2, **NO_OTHERS}
        for key in (acme, spare):  # hard-deleted: the keys no longer exist
            assert client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
        store: SqlStore = client.app.state.pipeline.store  # type: ignore[attr-defined]
        assert references(store.db, Person("acme", ""), tenant=True) == []
        held = privacy.export(store, privacy.Subject(Person("acme", ""), tenant=True))
        assert {k: v for k, v in held.items() if k in EMPTY} == EMPTY
        assert len(client.get("/v1/conversations", headers={"Authorization": f"Bearer {other}"}).json()["data"]) == 1


def test_privacy_purge_command(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    store = SqlStore(settings.db_url)
    try:
        old, fresh = talk(store, "alice", "old"), talk(store, "alice", "fresh")
        age(store, old, time.time() - 40 * DAY)
        age(store, fresh, time.time() - 10 * DAY)
    finally:
        store.close()
    env = {"EMBER_DATA_DIR": str(tmp_path / "data")}

    unset = run_cli(["privacy", "purge"], "", env)
    assert unset.returncode != 0 and "EMBER_RETENTION_DAYS" in unset.stderr and "Traceback" not in unset.stderr
    month = run_cli(["privacy", "purge"], "", {**env, "EMBER_RETENTION_DAYS": "30"})
    assert month.returncode == 0, month.stderr
    assert "purged 1 conversations (2 messages)" in month.stdout
    week = run_cli(["privacy", "purge", "--days", "7"], "", {**env, "EMBER_RETENTION_DAYS": "30"})
    assert "purged 1 conversations (2 messages)" in week.stdout
    store = SqlStore(settings.db_url)
    try:
        assert store.list_conversations(Person("", "alice")) == []
    finally:
        store.close()


# --- logs ----------------------------------------------------------------------------------------------------


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """`app` under a real uvicorn that leaves logging alone (no log_config), so every record reaches caplog."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_healthy(f"http://127.0.0.1:{port}", 60)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
