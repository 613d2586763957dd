"""Stored responses belong to one person: owners and people whose names differ only by case, a prefix or
Unicode form (NFC vs NFD) each see, list, continue and delete only their own (SQLite and PostgreSQL); the
privacy export holds them, hard deletion and retention remove them, and reading takes the `chat` scope."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.config import Settings
from ember.policy import privacy
from ember.policy.keys import KeyStore
from ember.store.responses import ResponseStore, StoredResponse
from ember.store.sql import SqlStore
from ember.types import Person, Usage

from .conftest import make_settings
from .test_store import _postgres_url

OWNERS = ("alice", "Alice", "al", "\u00e9lise", "e\u0301lise")  # case, a prefix, NFC and NFD of one name
PEOPLE = (None, "bob", "Bob", "bo", "\u00e9va", "e\u0301va")
MARK = re.compile(r"zq\d{3}x")


@dataclass
class Who:
    key: str
    user: str | None
    mark: str
    response: str = ""

    def params(self) -> dict[str, str]:
        return {} if self.user is None else {"user": self.user}

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    base = make_settings(tmp_path, chat_fast={"engine": "fake", "model": "fake", "options": {"replies": ["noted"]}})
    base = base.model_copy(update={"require_keys": True})
    if request.param == "sqlite":
        yield base
    else:
        for url in _postgres_url():  # drops the database when the loop resumes
            yield base.model_copy(update={"database_url": url})


def marks(resp: Any) -> set[str]:
    assert resp.status_code == 200, resp.text[:300]
    return set(MARK.findall(resp.text))


def populate(client: TestClient, settings: Settings, identities: list[tuple[str, str | None]]) -> list[Who]:
    """A key per owner and a response per (owner, user), each carrying its own marker."""
    keys = KeyStore(client.app.state.pipeline.store.db, settings)  # type: ignore[attr-defined]
    secrets = {owner: keys.create(owner, ("chat",), "local")[0] for owner, _ in identities}
    everyone = []
    for n, (owner, user) in enumerate(identities):
        who = Who(secrets[owner], user, f"zq{n:03d}x")
        body = {"model": "ember-instant", "input": f"note {who.mark}", **who.params()}
        resp = client.post("/v1/responses", json=body, headers=who.auth)
        assert resp.status_code == 200, resp.text
        who.response = resp.json()["id"]
        everyone.append(who)
    return everyone


def test_each_person_reaches_only_their_own_responses(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        identities = [*itertools.product(OWNERS, (None, "bob")), *(("alice", user) for user in PEOPLE[2:])]
        people = populate(client, settings, identities)
        for who in people:
            own = f"/v1/responses/{who.response}"
            assert client.get(own, params=who.params(), headers=who.auth).json()["id"] == who.response
            assert marks(client.get(f"{own}/input_items", params=who.params(), headers=who.auth)) == {who.mark}
        for who, other in itertools.permutations(people, 2):
            theirs = f"/v1/responses/{other.response}"
            for asked_as in {who.user, other.user}:  # as oneself, and naming the other's `user`
                params = {} if asked_as is None else {"user": asked_as}
                if (who.key, asked_as) == (other.key, other.user):
                    continue
                assert client.get(theirs, params=params, headers=who.auth).status_code == 404, (who, other)
                assert client.get(f"{theirs}/input_items", params=params, headers=who.auth).status_code == 404
                assert client.delete(theirs, params=params, headers=who.auth).status_code == 404
                body = {"model": "ember-instant", "input": "zq999x", "previous_response_id": other.response, **params}
                assert client.post("/v1/responses", json=body, headers=who.auth).status_code == 404
        for who in people:  # nothing was taken, added or deleted by anyone else's attempts
            own = client.get(f"/v1/responses/{who.response}/input_items", params=who.params(), headers=who.auth)
            assert marks(own) == {who.mark}


def test_export_and_erasure_cover_responses(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        people = populate(client, settings, list(itertools.product(("alice", "Alice"), (None, "bob", "Bob"))))
        for who in (w for w in people if w.user is not None):  # (an owner's whole tenant takes `admin`)
            exported = client.get("/v1/me/export", params=who.params(), headers=who.auth).json()
            assert [r["id"] for r in exported["responses"]] == [who.response]
            assert MARK.findall(str(exported["responses"])) == [who.mark]
        bob = people[1]
        removed = client.delete("/v1/me", params=bob.params(), headers=bob.auth).json()["removed"]
        assert removed["responses"] == 1
        assert client.get(f"/v1/responses/{bob.response}", params=bob.params(), headers=bob.auth).status_code == 404
        for who in people[2:]:
            assert client.get(f"/v1/responses/{who.response}", params=who.params(), headers=who.auth).status_code == 200


def test_reading_responses_takes_the_chat_scope(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, chat_fast={"engine": "fake", "model": "fake"}).model_copy(
        update={"require_keys": True}
    )
    with TestClient(create_app(settings)) as client:
        keys = KeyStore(client.app.state.pipeline.store.db, settings)  # type: ignore[attr-defined]
        chat = {"Authorization": f"Bearer {keys.create('acme', ('chat',), 'local')[0]}"}
        audio = {"Authorization": f"Bearer {keys.create('acme', ('audio',), 'local')[0]}"}
        rid = client.post("/v1/responses", json={"model": "ember-instant", "input": "hi"}, headers=chat).json()["id"]
        for method, path in (("GET", rid), ("GET", f"{rid}/input_items"), ("DELETE", rid)):
            assert client.request(method, f"/v1/responses/{path}", headers=audio).status_code == 403
        made = client.post("/v1/responses", json={"model": "ember-instant", "input": "hi"}, headers=audio)
        assert made.status_code == 403 and made.json()["error"]["code"] == "insufficient_scope"


def stored(store: ResponseStore, person: Person, created_at: float, previous: str | None = None) -> str:
    response = StoredResponse(
        id=f"resp_{person.name}_{created_at:.0f}",
        person=person,
        created_at=created_at,
        model="ember-instant",
        previous_id=previous,
        status="completed",
        input=[{"id": "msg_1", "type": "message", "role": "user", "content": [], "status": "completed"}],
        output=[],
        settings={},
        usage=Usage(3, 4),
    )
    store.save(response)
    return response.id


def test_the_store_follows_chains_by_person_and_purges_by_age(tmp_path: Path) -> None:
    sql = SqlStore(f"sqlite:///{tmp_path / 'ember.db'}")
    try:
        store, ann, other = ResponseStore(sql.db), Person("t", "ann"), Person("t", "Ann")
        first = stored(store, ann, 1_000.0)
        second = stored(store, ann, 2_000.0, first)
        third = stored(store, ann, 3_000.0, second)
        assert [r.id for r in store.chain(third, ann)] == [first, second, third]
        hijack = stored(store, other, 4_000.0, second)  # a chain never crosses into another person's responses
        assert [r.id for r in store.chain(hijack, other)] == [hijack]
        assert (
            privacy.purge_expired(sql, Settings(data_dir=tmp_path, retention_days=1), 2_500.0 + 86_400).responses == 2
        )
        assert [r.id for r in store.chain(third, ann)] == [third]  # what remains of the chain
        assert store.get(third, ann).usage == Usage(3, 4)
    finally:
        sql.close()
