"""API keys: hashes only at rest, 401/403 envelopes, revocation, per-key namespaces, the keyless loopback
default, and the `ember keys` CLI."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.config import Settings
from ember.errors import InvalidRequest, NotFound, Unauthenticated
from ember.policy.keys import LOCAL, KeyStore, hash_key
from ember.store.sql import SqlStore
from ember.types import Person

from .audio import tone
from .conftest import make_settings, run_cli

FAKE = {"chat_fast": {"engine": "fake", "model": "fake", "ctx_size": 256}}


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, **FAKE).model_copy(update={"require_keys": True})
    with TestClient(create_app(settings)) as c:
        yield c


def new_key(client: TestClient, owner: str, scopes: tuple[str, ...] = ("chat", "audio"), tier: str = "local") -> str:
    keys: KeyStore = client.app.state.keys  # type: ignore[attr-defined]
    return keys.create(owner, scopes, tier)[0]


def chat(client: TestClient, key: str | None, text: str = "hi", **over: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": "ember-instant", "messages": [{"role": "user", "content": text}], **over}
    return client.post("/v1/chat/completions", json=body, headers=headers)


def test_keys_required_off_loopback_only() -> None:
    assert Settings(host="127.0.0.1").keys_required is False
    assert Settings(host="::1").keys_required is False
    assert Settings(host="0.0.0.0").keys_required is True
    assert Settings(host="127.0.0.1", require_keys=True).keys_required is True
    assert Settings(host="0.0.0.0", require_keys=False).keys_required is False


def test_keyless_loopback_accepts_any_non_ember_key(client: TestClient) -> None:
    assert chat(client, None).status_code == 200
    assert chat(client, "not-needed").status_code == 200  # what OpenAI clients send when told nothing


def test_keyless_loopback_still_checks_ember_keys(client: TestClient) -> None:
    resp = chat(client, "ember-forged")
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("headers", "message"),
    [({}, "didn't provide an API key"), ({"Authorization": "Bearer ember-wrong"}, "Incorrect API key")],
)
def test_missing_or_wrong_key_is_401(keyed: TestClient, headers: dict[str, str], message: str) -> None:
    for resp in (
        keyed.post("/v1/chat/completions", json={"model": "ember-instant", "messages": []}, headers=headers),
        keyed.get("/v1/models", headers=headers),
        keyed.get("/v1/conversations", headers=headers),
    ):
        assert resp.status_code == 401, resp.text
        err = resp.json()["error"]
        assert err["type"] == "invalid_request_error" and err["code"] == "invalid_api_key" and message in err["message"]


def test_valid_key_works_by_bearer_and_x_api_key(keyed: TestClient) -> None:
    key = new_key(keyed, "acme")
    assert chat(keyed, key).status_code == 200
    resp = keyed.post(
        "/v1/chat/completions",
        json={"model": "ember-instant", "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": key},
    )
    assert resp.status_code == 200
    assert keyed.get("/health").status_code == 200  # health needs no key


def test_revoked_key_is_401_at_once(keyed: TestClient) -> None:
    key = new_key(keyed, "acme")
    assert chat(keyed, key).status_code == 200
    keys: KeyStore = keyed.app.state.keys  # type: ignore[attr-defined]
    (record,) = keys.list("acme")
    keys.revoke(record["id"])
    resp = chat(keyed, key)
    unknown = chat(keyed, key[:-4] + "xxxx")
    assert resp.status_code == unknown.status_code == 401
    assert resp.json() == unknown.json()  # a revoked key is not told apart from one that never existed
    with pytest.raises(NotFound):
        keys.revoke(record["id"])


def test_missing_scope_is_403(keyed: TestClient) -> None:
    chat_only = new_key(keyed, "acme", ("chat",))
    resp = keyed.post(
        "/v1/audio/transcriptions",
        files={"file": ("a.wav", tone(1.0))},
        headers={"Authorization": f"Bearer {chat_only}"},
    )
    assert resp.status_code == 403
    assert resp.json()["error"] == {
        "message": "this API key lacks the 'audio' scope",
        "type": "permission_error",
        "param": None,
        "code": "insufficient_scope",
    }
    audio_only = new_key(keyed, "acme", ("audio",))
    assert chat(keyed, audio_only).status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("POST", "/v1/audio/transcriptions", "audio"),
        ("POST", "/v1/events", "shopping"),
        ("POST", "/v1/posts", "shopping"),
        ("POST", "/v1/friendships", "shopping"),
        ("GET", "/v1/posts/p1", "shopping"),
        ("GET", "/v1/catalog/items/i1", "shopping"),
        ("GET", "/v1/recommendations", "shopping"),
        ("POST", "/v1/catalog/items", "admin"),
    ],
)
def test_a_fixed_scope_is_checked_before_the_body_is_validated(
    keyed: TestClient, method: str, path: str, scope: str
) -> None:
    """Routes declare their scope as a dependency: a key without it is refused before its body is checked."""
    health_only = new_key(keyed, "acme", ("health",))
    resp = keyed.request(method, path, json={"nonsense": 1}, headers={"Authorization": f"Bearer {health_only}"})
    assert resp.status_code == 403
    assert resp.json()["error"]["message"] == f"this API key lacks the {scope!r} scope"


def test_each_key_sees_only_its_own_people(keyed: TestClient) -> None:
    acme, globex = new_key(keyed, "acme"), new_key(keyed, "globex")
    cid = chat(keyed, acme, "secret plans", user="alice").headers["x-ember-conversation-id"]
    mine = keyed.get("/v1/conversations?user=alice", headers={"Authorization": f"Bearer {acme}"}).json()["data"]
    assert [c["id"] for c in mine] == [cid]
    theirs = keyed.get("/v1/conversations?user=alice", headers={"Authorization": f"Bearer {globex}"}).json()
    assert theirs["data"] == []
    peek = keyed.get(f"/v1/conversations/{cid}?user=alice", headers={"Authorization": f"Bearer {globex}"})
    assert peek.status_code == 404
    cont = chat(keyed, globex, "more", user="alice", conversation_id=cid)
    assert cont.status_code == 404  # cannot continue another key's conversation either


def test_scopes_bound_what_a_key_reaches_of_people(keyed: TestClient) -> None:
    """An audio-only key held nothing about people yet exported and erased its owner (admin keys included);
    a shopping-only key listed chats; a chat-only key had speech heard in chat."""
    admin, audio = new_key(keyed, "acme", ("chat", "admin")), new_key(keyed, "acme", ("audio",))
    shopper, chatter = new_key(keyed, "acme", ("shopping",)), new_key(keyed, "acme", ("chat",))
    assert chat(keyed, admin, "acme's words", user="bo").status_code == 200
    for path in ("/v1/me", "/v1/me/export", "/v1/conversations"):
        assert keyed.get(path, params={"user": "bo"}, headers={"Authorization": f"Bearer {audio}"}).status_code == 403
    assert keyed.delete("/v1/me", headers={"Authorization": f"Bearer {audio}"}).status_code == 403
    assert keyed.delete("/v1/me", headers={"Authorization": f"Bearer {chatter}"}).status_code == 403  # not admin
    assert chat(keyed, admin).status_code == 200  # the admin key survived them all
    as_shopper = {"Authorization": f"Bearer {shopper}"}
    assert keyed.get("/v1/conversations", params={"user": "bo"}, headers=as_shopper).json()["data"] == []
    cid = keyed.get("/v1/conversations", params={"user": "bo"}, headers={"Authorization": f"Bearer {chatter}"})
    conversation = cid.json()["data"][0]["id"]
    assert keyed.get(f"/v1/conversations/{conversation}", params={"user": "bo"}, headers=as_shopper).status_code == 404
    voice = {"type": "input_audio", "input_audio": {"data": base64.b64encode(tone(1.0)).decode(), "format": "wav"}}
    heard = chat(keyed, chatter, messages=[{"role": "user", "content": [voice]}])
    assert heard.status_code == 403 and "'audio'" in heard.json()["error"]["message"]
    allowed = chat(keyed, new_key(keyed, "acme", ("chat", "audio")), messages=[{"role": "user", "content": [voice]}])
    assert allowed.status_code == 200, allowed.text


def test_person_mapping() -> None:
    assert LOCAL.person(None) == Person("", "anonymous") and LOCAL.person("bob") == Person("", "bob")
    assert LOCAL.person("acme/bob") == Person("", "acme/bob") != Person("acme", "bob")
    keyed = LOCAL.__class__("acme", frozenset({"chat"}), "free", "key_1")
    assert keyed.person(None) == Person("acme", "") and keyed.person("bob") == Person("acme", "bob")
    assert keyed.person("bob").label == "acme/bob" and keyed.person(None).label == "acme"


def test_only_the_hash_is_stored(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    store = SqlStore(settings.db_url)
    try:
        keys = KeyStore(store.db, settings)
        secret, record = keys.create("acme", ("chat",), "free", "ci")
        assert secret.startswith("ember-") and "hash" not in record and record["prefix"] == secret[:12]
        assert keys.authenticate(secret).owner == "acme"
        with pytest.raises(Unauthenticated):
            keys.authenticate(secret + "x")
    finally:
        store.close()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("ember.db*"))
    assert secret.encode() not in raw and hash_key(secret).encode() in raw
    with sqlite3.connect(tmp_path / "data" / "ember.db") as db:
        assert db.execute("SELECT count(*) FROM api_keys WHERE hash = ?", (hash_key(secret),)).fetchone() == (1,)


@pytest.mark.parametrize(
    ("owner", "scopes", "tier", "words"),
    [("acme", ("fly",), "free", "scopes"), ("acme", (), "free", "scopes"), ("acme", ("chat",), "gold", "tier"),
     ("a/b", ("chat",), "free", "owner"), (" ", ("chat",), "free", "owner")],
)  # fmt: skip
def test_create_refuses_bad_input(tmp_path: Path, owner: str, scopes: tuple[str, ...], tier: str, words: str) -> None:
    settings = make_settings(tmp_path)
    store = SqlStore(settings.db_url)
    try:
        with pytest.raises(InvalidRequest, match=words):
            KeyStore(store.db, settings).create(owner, scopes, tier)
    finally:
        store.close()


def test_cli_keys_lifecycle(tmp_path: Path) -> None:
    env = {"EMBER_DATA_DIR": str(tmp_path)}
    made = run_cli(["keys", "create", "acme", "--scope", "chat", "--tier", "partner", "--name", "ci"], "", env)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("ember-") and "tier=partner" in made.stderr
    listed = run_cli(["keys", "list"], "", env).stdout
    assert "acme" in listed and "active" in listed and secret not in listed and secret[:12] in listed
    key_id = listed.split()[0]
    assert run_cli(["keys", "revoke", key_id], "", env).returncode == 0
    assert "revoked" in run_cli(["keys", "list"], "", env).stdout
    again = run_cli(["keys", "revoke", key_id], "", env)
    assert again.returncode != 0 and "no active key" in again.stderr and "Traceback" not in again.stderr
    bad = run_cli(["keys", "create", "acme", "--scope", "fly"], "", env)
    assert bad.returncode != 0 and "scopes must be" in bad.stderr and "Traceback" not in bad.stderr


def test_health_mode_needs_the_health_scope(keyed: TestClient) -> None:
    resp = chat(keyed, new_key(keyed, "acme", ("chat",)), model="ember-health")
    assert resp.status_code == 403 and "'health' scope" in resp.json()["error"]["message"]
