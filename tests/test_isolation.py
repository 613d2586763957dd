"""Tenants never touch each other: key owners and people whose names differ only by case, Unicode form or a
prefix, or hold `/`, `%` or `_`, each write conversations, consent, events and posts through the API (keys
required, SQLite and PostgreSQL); then every read, list, export, continue (or edit), branch, delete and
recommendation route is asked by every one of them, and each answer must hold that identity's own marker
and no one else's."""

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
from ember.policy.keys import KeyStore
from ember.shopping.demo import load_shop

from .test_shopping import shop_settings
from .test_store import _postgres_url

# case, a prefix of another, LIKE wildcards, NFC vs NFD of one name, and a demo person's name (`ben`)
OWNERS = ("alice", "Alice", "al", "al%", "a_ice", "\u00e9lise", "e\u0301lise", "ben")
PEOPLE = (None, "bob", "Bob", "bo", "b/ob", "b%", "b_b", "\u00e9va", "e\u0301va", "ana")
ALL_SCOPES = ("chat", "audio", "shopping", "health", "admin")
MARK = re.compile(r"zq\d{3}x")


@dataclass
class Who:
    owner: str
    user: str | None
    key: str
    mark: str
    conversation: str = ""

    def params(self) -> dict[str, str]:
        return {} if self.user is None else {"user": self.user}

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def marks(resp: Any) -> set[str]:
    assert resp.status_code == 200, resp.text[:300]
    return set(MARK.findall(resp.text))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    base = shop_settings(tmp_path, replies=["noted"]).model_copy(update={"require_keys": True})
    if request.param == "sqlite":
        yield base
    else:
        for url in _postgres_url():  # drops the database when the loop resumes
            yield base.model_copy(update={"database_url": url})


def populate(client: TestClient, settings: Settings) -> list[Who]:
    """Every owner and person: a conversation, consent, a like and a friends-only post with the same id in
    every tenant, each carrying the identity's marker; the demo shop (in the operator's tenant) as well."""
    shop = client.app.state.services.shop  # type: ignore[attr-defined]
    load_shop(shop)
    keys = KeyStore(shop.store.db, settings)
    secrets = {owner: keys.create(owner, ALL_SCOPES, "local")[0] for owner in OWNERS}
    people = []
    for n, (owner, user) in enumerate(itertools.product(OWNERS, PEOPLE)):
        who = Who(owner, user, secrets[owner], f"zq{n:03d}x")
        body = {"model": "ember-instant", "messages": [{"role": "user", "content": f"note {who.mark}"}]}
        resp = client.post("/v1/chat/completions", json={**body, **who.params()}, headers=who.auth)
        assert resp.status_code == 200, resp.text
        who.conversation = resp.headers["x-ember-conversation-id"]
        if user is not None:
            row = {"user": user, "item": "tent-2p", "type": "like"}
            assert client.post("/v1/events", json={"events": [row]}, headers=who.auth).json()["accepted"] == 1
            post = {"id": f"p-{PEOPLE.index(user)}", "author": user, "text": f"tent {who.mark}", "items": ["tent-2p"]}
            assert client.post("/v1/posts", json={"posts": [post]}, headers=who.auth).json()["accepted"] == 1
        people.append(who)
    chosen = people[1]  # alice's bob alone turns personalisation on
    client.patch("/v1/me/consent", params=chosen.params(), json={"personalisation": True}, headers=chosen.auth)
    return people


def test_no_route_shows_one_tenant_or_person_to_another(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        people = populate(client, settings)
        for who in people:
            tenant = {w.mark for w in people if w.owner == who.owner}
            assert marks(client.get("/v1/conversations", params=who.params(), headers=who.auth)) == {who.mark}
            exported = marks(client.get("/v1/me/export", params=who.params(), headers=who.auth))
            assert exported == (tenant if who.user is None else {who.mark})  # no user: the owner's whole tenant
            own = client.get(f"/v1/conversations/{who.conversation}", params=who.params(), headers=who.auth)
            assert marks(own) == {who.mark}
            found = client.get("/v1/conversations", params={**who.params(), "q": "zq"}, headers=who.auth)
            assert marks(found) == {who.mark}
            file = client.get(f"/v1/conversations/{who.conversation}/export", params=who.params(), headers=who.auth)
            assert marks(file) == {who.mark}
            me = client.get("/v1/me", params=who.params(), headers=who.auth).json()
            assert me["consent"]["personalisation"] is (who is people[1])
            if who.user is not None:
                post = client.get(f"/v1/posts/p-{PEOPLE.index(who.user)}", params=who.params(), headers=who.auth)
                assert marks(post) == {who.mark}  # the same post id in every tenant: each sees its own
                recs = client.get("/v1/recommendations", params=who.params(), headers=who.auth).json()
                assert recs["personalised"] is (who is people[1])
                demo = client.get("/v1/posts/post-ben-espresso", params=who.params(), headers=who.auth)
                assert demo.status_code == 404  # the operator's demo people are no tenant's
        for who, other in itertools.permutations(people, 2):
            if who.owner != other.owner and who.user == other.user:  # another tenant's, asked as that person
                theirs = client.get(f"/v1/conversations/{other.conversation}", params=other.params(), headers=who.auth)
                assert theirs.status_code == 404, (who, other)
            elif who.owner == other.owner:  # another person of one's own tenant, asked as oneself
                url = f"/v1/conversations/{other.conversation}"
                theirs = client.get(url, params=who.params(), headers=who.auth)
                assert theirs.status_code == 404, (who, other)
                renamed = client.patch(url, params=who.params(), json={"title": "zq999x"}, headers=who.auth)
                assert renamed.status_code == 404, (who, other)
                assert client.delete(url, params=who.params(), headers=who.auth).status_code == 404, (who, other)
                shown = client.post(f"{url}/branch", params=who.params(), json={"seq": 0}, headers=who.auth)
                assert shown.status_code == 404, (who, other)
                assert client.get(f"{url}/export", params=who.params(), headers=who.auth).status_code == 404


def test_continuing_or_erasing_reaches_only_ones_own(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        people = populate(client, settings)
        shifted = people[len(PEOPLE) :] + people[: len(PEOPLE)]  # the same person in the next tenant
        for who, other in zip(people, shifted, strict=True):
            body = {"model": "ember-instant", "messages": [{"role": "user", "content": "append zq999x"}]}
            body |= {**other.params(), "conversation_id": other.conversation}
            assert client.post("/v1/chat/completions", json=body, headers=who.auth).status_code == 404
            edit = {**body, "messages": [{"role": "user", "content": "edit zq998x"}], "replace": 0}
            assert client.post("/v1/chat/completions", json=edit, headers=who.auth).status_code == 404
        single = [w for w in people if w.user == "Bob"]  # one person in every tenant
        whole = next(w for w in people if w.owner == "alice" and w.user is None)  # and one whole owner
        for who in [*single, whole]:
            assert client.delete("/v1/me", params=who.params(), headers=who.auth).status_code == 200
        assert client.get("/v1/me/export", headers=whole.auth).status_code == 401  # its keys went with it
        survivors = [w for w in people if w.owner != "alice" and w.user != "Bob"]
        for who in survivors:
            tenant = {w.mark for w in survivors if w.owner == who.owner}
            exported = marks(client.get("/v1/me/export", params=who.params(), headers=who.auth))
            assert exported == (tenant if who.user is None else {who.mark})  # no one's lost, nothing appended
        for who in single[1:]:  # (alice's Bob went with alice's key)
            assert marks(client.get("/v1/me/export", params=who.params(), headers=who.auth)) == set()
