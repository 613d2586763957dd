"""Multimodal history: a stored user turn keeps its parts (each image's description, type and size, and each
audio clip's transcript and seconds) and, with the `media_storage` consent on (off by default), its images,
at most EMBER_MEDIA_MAX_BYTES each, once per image per person; they are fetched through an owner-checked route,
exported, deleted when the flag goes off, with their conversation, by retention and by erasure, leaving
nothing behind in the tables or the data dir; no one reaches another's (names differing by case, prefix or
Unicode form). Fake engine, image readers replaced by none, real SQLite files (the store test: PostgreSQL too)."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from ember.api.app import create_app
from ember.config import Settings
from ember.policy import privacy
from ember.store.parts import Keeping
from ember.store.schema import media, message_parts
from ember.store.sql import SqlStore, StoredAnswer, new_conversation_id
from ember.types import Heard, Image, Message, Person
from ember.vision import describe

from .audio import tone
from .conftest import make_settings
from .test_privacy import make_key, references
from .test_store import _postgres_url

CAP = 4096  # EMBER_MEDIA_MAX_BYTES in these tests
BLIND = {"engine": "fake", "model": "fake", "ctx_size": 2048, "options": {"describe_images": True}}
OWNERS = ("ann", "Ann", "ann2", "\u00e9", "e\u0301")  # case, a prefix, NFC and NFD of one name
PEOPLE = (None, "ann", "\u00e9", "e\u0301")  # the owner itself, and people of each tenant
HEARD = "what is the capital of France"  # what the fake transcriber hears in any sound


def png(seed: int, side: int = 16) -> bytes:
    """A PNG of random pixels: about 3 bytes a pixel (side 16: ~0.8 KB, under the cap; 48: ~7 KB, over it)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    PILImage.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def image_part(data: bytes) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(data).decode()}}


def audio_part(wav: bytes) -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"}}


@dataclass
class Who:
    """Whom a request acts for: `user`, with a key's `auth` header when keys are required."""

    user: str | None = None
    key: str | None = None
    conversation: str = ""

    @property
    def params(self) -> dict[str, str]:
        return {} if self.user is None else {"user": self.user}

    @property
    def auth(self) -> dict[str, str]:
        return {} if self.key is None else {"Authorization": f"Bearer {self.key}"}

    def send(self, client: TestClient, *parts: dict[str, Any], conversation: str | None = None) -> str:
        """A user turn of `parts` (text first); the conversation's id."""
        body: dict[str, Any] = {"model": "ember-instant", "messages": [{"role": "user", "content": list(parts)}]}
        body |= {**self.params, **({"conversation_id": conversation} if conversation else {})}
        response = client.post("/v1/chat/completions", json=body, headers=self.auth)
        assert response.status_code == 200, response.text
        self.conversation = response.headers["x-ember-conversation-id"]
        return self.conversation

    def get(self, client: TestClient, path: str, **params: str) -> Any:
        return client.get(path, params={**self.params, **params}, headers=self.auth)

    def consent(self, client: TestClient, **flags: bool) -> None:
        response = client.patch("/v1/me/consent", params=self.params, json=flags, headers=self.auth)
        assert response.status_code == 200, response.text

    def turns(self, client: TestClient, conversation: str) -> list[dict[str, Any]]:
        response = self.get(client, f"/v1/conversations/{conversation}")
        assert response.status_code == 200, response.text
        return list(response.json()["messages"])


def text(words: str) -> dict[str, Any]:
    return {"type": "text", "text": words}


def app_for(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """The app on `settings`, its image readers replaced by none (a description holds only the image's size)."""
    monkeypatch.setitem(describe._describers, settings.cache_dir, describe.Describer([]))
    return TestClient(create_app(settings.model_copy(update={"media_max_bytes": CAP})))


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with app_for(make_settings(tmp_path, chat_fast=BLIND), monkeypatch) as c:
        yield c


def db(client: TestClient) -> sa.Engine:
    engine: sa.Engine = client.app.state.pipeline.store.db  # type: ignore[attr-defined]
    return engine


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def test_images_are_kept_only_with_media_storage_under_the_cap_once_per_person(client: TestClient) -> None:
    ann, small, large = Who("ann"), png(1), png(2, side=48)
    assert len(small) < CAP < len(large)
    first = ann.send(client, text("look"), image_part(small))
    (part,) = ann.turns(client, first)[0]["parts"]
    assert part["stored"] is False and part["not_stored"] == "media_storage_off" and "url" not in part
    assert (part["sha256"], part["mime"], part["bytes"]) == (sha(small), "image/png", len(small))
    assert part["description"].startswith("[Image 1, 16x16 pixels")
    assert count(db(client), media) == 0

    ann.consent(client, media_storage=True)
    second = ann.send(client, text("and these"), image_part(small), image_part(large))  # never an error
    kept, too_large = ann.turns(client, second)[0]["parts"]
    assert kept["stored"] is True and kept["url"] == f"/v1/conversations/{second}/media/{sha(small)}"
    assert kept["description"].startswith("[Image 1, 16x16") and too_large["description"].startswith("[Image 2, 48x48")
    assert (too_large["stored"], too_large["not_stored"], too_large["bytes"]) == (False, "too_large", len(large))
    fetched = ann.get(client, kept["url"])
    assert fetched.status_code == 200 and fetched.content == small
    assert fetched.headers["content-type"] == "image/png" and fetched.headers["x-content-type-options"] == "nosniff"
    assert ann.get(client, f"/v1/conversations/{second}/media/{sha(large)}").status_code == 404
    assert ann.turns(client, first)[0]["parts"][0]["stored"] is True  # the same image, now kept, shows there too

    third = ann.send(client, text("again"), image_part(small))
    ann.send(client, text("what was it?"), conversation=third)  # a text-only turn has no parts
    turns = ann.turns(client, third)
    assert turns[0]["parts"][0]["stored"] is True and "parts" not in turns[2] and "parts" not in turns[1]
    assert count(db(client), media) == 1  # one blob for one image of one person, named by three turns
    Who("bob").send(client, text("mine"), image_part(small))  # bob's consent is off: nothing of his is kept
    assert count(db(client), media) == 1


def test_audio_parts_keep_their_transcript_and_seconds(client: TestClient) -> None:
    kim = Who("kim")
    conversation = kim.send(client, text("listen"), audio_part(tone(1.5)), image_part(png(3)), audio_part(tone(0.5)))
    (user, _answer) = kim.turns(client, conversation)
    assert user["content"] == f"listen\n{HEARD}\n{HEARD}"
    image, first, second = user["parts"]  # images first, then audio, each in the order sent
    assert image["type"] == "image"
    assert first == {"type": "audio", "transcript": HEARD, "language": "en", "duration": 1.5}
    assert second["duration"] == 0.5
    markdown = kim.get(client, f"/v1/conversations/{conversation}/export").text
    assert "*audio, 1.5 s (en)*" in markdown and "*image, image/png, 16x16, not stored: media_storage_off*" in markdown


def test_exports_hold_the_stored_images(client: TestClient) -> None:
    lou, image = Who("lou"), png(4)
    lou.consent(client, media_storage=True)
    conversation = lou.send(client, text("keep it"), image_part(image))
    Who("Lou").send(client, text("not lou's"), image_part(png(5)))
    held = lou.get(client, "/v1/me/export").json()
    (blob,) = held["media"]
    assert (blob["user"], blob["sha256"], blob["mime"], blob["bytes"]) == ("lou", sha(image), "image/png", len(image))
    assert base64.b64decode(blob["data"]) == image and (blob["width"], blob["height"]) == (16, 16)
    assert held["conversations"][0]["messages"][0]["parts"][0]["sha256"] == sha(image)
    one = lou.get(client, f"/v1/conversations/{conversation}/export", format="json").json()
    assert [base64.b64decode(m["data"]) for m in one["media"]] == [image]
    assert {k: v for k, v in one.items() if k != "media"} == lou.get(client, f"/v1/conversations/{conversation}").json()
    markdown = lou.get(client, f"/v1/conversations/{conversation}/export").text
    assert f"*image, image/png, 16x16, stored as `{sha(image)}`*" in markdown


def files_holding(directory: Path, data: bytes) -> list[str]:
    """The files under `directory` whose bytes contain `data`."""
    return [str(p) for p in directory.rglob("*") if p.is_file() and data in p.read_bytes()]


def test_turning_media_storage_off_deletes_the_stored_images(client: TestClient, tmp_path: Path) -> None:
    mia, max_, image = Who("mia"), Who("max"), png(6)
    for who in (mia, max_):
        who.consent(client, media_storage=True)
        who.send(client, text("keep it"), image_part(image))
    url = mia.turns(client, mia.conversation)[0]["parts"][0]["url"]
    assert mia.get(client, url).status_code == 200 and files_holding(tmp_path / "data", image)

    mia.consent(client, media_storage=False)
    assert mia.get(client, url).status_code == 404
    (part,) = mia.turns(client, mia.conversation)[0]["parts"]
    assert (part["stored"], part["not_stored"]) == (False, "media_storage_off") and part["description"]
    mia.send(client, text("and now"), image_part(png(7)))
    assert count(db(client), media) == 1  # max's; none of mia's, old or new
    assert max_.get(client, max_.turns(client, max_.conversation)[0]["parts"][0]["url"]).content == image
    max_.consent(client, media_storage=False)
    assert files_holding(tmp_path / "data", image) == []  # overwritten in the database file, not left in its log


def test_deleting_a_conversation_or_the_person_leaves_nothing(client: TestClient, tmp_path: Path) -> None:
    """A conversation's delete drops its parts and the images no other turn of the person names; erasure drops
    the rest: no row names the person or their images, no file under the data dir holds an image's bytes."""
    eve, bob, shared, own, bobs = Who("eve"), Who("bob"), png(8), png(9), png(10)
    for who in (eve, bob):
        who.consent(client, media_storage=True)
    first = eve.send(client, text("two"), image_part(shared), image_part(own), audio_part(tone(1.0)))
    second = eve.send(client, text("one"), image_part(shared))
    bob.send(client, text("bob's"), image_part(bobs))
    assert count(db(client), media) == 3 and count(db(client), message_parts) == 5

    assert client.delete(f"/v1/conversations/{first}", params=eve.params).status_code == 200
    assert eve.get(client, eve.turns(client, second)[0]["parts"][0]["url"]).content == shared  # still named
    assert eve.get(client, f"/v1/conversations/{first}/media/{sha(shared)}").status_code == 404
    assert files_holding(tmp_path / "data", own) == []
    assert count(db(client), media) == 2 and count(db(client), message_parts) == 2

    removed = client.delete("/v1/me", params=eve.params).json()["removed"]
    assert (removed["media"], removed["messages"], removed["conversations"]) == (1, 2, 1)
    assert references(db(client), Person("", "eve"), tenant=False) == []
    with db(client).connect() as conn:
        left = {t.name: conn.execute(sa.select(t)).all() for t in (media, message_parts)}
    assert [r.sha256 for r in left["media"]] == [sha(bobs)] and [r.sha256 for r in left["message_parts"]] == [sha(bobs)]
    assert [files_holding(tmp_path / "data", image) for image in (shared, own)] == [[], []]
    assert bob.get(client, bob.turns(client, bob.conversation)[0]["parts"][0]["url"]).content == bobs


def test_no_one_reaches_another_ones_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Key owners and people whose names differ by case, a prefix or Unicode form, each with the same image and
    one of their own: every image is reached only by its person, through their own conversation."""
    settings = make_settings(tmp_path, chat_fast=BLIND).model_copy(update={"require_keys": True})
    keys = {owner: make_key(settings, owner) for owner in OWNERS}
    people = [Who(user, keys[owner]) for owner, user in itertools.product(OWNERS, PEOPLE)]
    shared, own = png(11), {id(who): png(100 + n) for n, who in enumerate(people)}
    with app_for(settings, monkeypatch) as client:
        for who in people:
            who.consent(client, media_storage=True)
            who.send(client, text("mine"), image_part(shared), image_part(own[id(who)]))
        assert count(db(client), media) == 2 * len(people)  # one per distinct image per person
        for who in people:
            mine = f"/v1/conversations/{who.conversation}/media"
            assert who.get(client, f"{mine}/{sha(shared)}").content == shared
            assert who.get(client, f"{mine}/{sha(own[id(who)])}").content == own[id(who)]
        for who, other in itertools.permutations(people, 2):
            theirs = f"/v1/conversations/{other.conversation}/media"
            for path in (f"{theirs}/{sha(shared)}", f"{theirs}/{sha(own[id(other)])}"):
                refused = who.get(client, path)
                assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found", (who, other)
            not_named = who.get(client, f"/v1/conversations/{who.conversation}/media/{sha(own[id(other)])}")
            assert not_named.status_code == 404, (who, other)


@pytest.mark.parametrize("bad", ["abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65])
def test_a_malformed_image_id_is_refused(client: TestClient, bad: str) -> None:
    conversation = Who("ivy").send(client, text("hi"))
    response = client.get(f"/v1/conversations/{conversation}/media/{bad}", params={"user": "ivy"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "sha256")


@pytest.mark.parametrize("value", ["yes", 1, None, [True]])
def test_the_media_storage_flag_takes_only_a_boolean(client: TestClient, value: object) -> None:
    response = client.patch("/v1/me/consent", params={"user": "ivy"}, json={"media_storage": value})
    assert response.status_code == 400 and response.json()["error"]["param"] == "media_storage"
    assert client.get("/v1/me", params={"user": "ivy"}).json()["consent"]["media_storage"] is False


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    urls = iter([f"sqlite:///{tmp_path / 'db' / 'ember.db'}"]) if request.param == "sqlite" else _postgres_url()
    s = SqlStore(next(urls))
    try:
        yield s
    finally:
        s.close()
        for _ in urls:  # resumes the Postgres generator, which drops its database
            pass


def decoded(data: bytes) -> Image:
    return Image(data, "image/png", 16, 16, sha(data))


def test_the_store_keeps_parts_and_drops_images_with_their_last_turn(store: SqlStore, tmp_path: Path) -> None:
    """Concurrent-safe inserts of one image (each backend's ON CONFLICT), retention, and the export's shape."""
    ann, image = Person("", "ann"), decoded(png(12))
    turn = Message("user", "look", images=(image,), heard=(Heard("hello", "en", 2.25),))
    ids = []
    for _ in range(2):
        ids.append(new_conversation_id())
        store.save_exchange(
            conversation_id=ids[-1],
            user=ann,
            mode="ember-instant",
            prompt=[turn],
            answer=StoredAnswer("ok"),
            keeping=Keeping(images=True, max_bytes=CAP),
        )
    parts = store.get_conversation(ids[0], ann)["messages"][0]["parts"]
    assert parts[1] == {"type": "audio", "transcript": "hello", "language": "en", "duration": 2.25}
    assert parts[0]["stored"] is True and parts[0]["description"] is None  # no description was made
    assert count(store.db, media) == 1
    with store.db.begin() as conn:  # the first conversation is old
        conn.execute(sa.text("UPDATE conversations SET updated_at = 0 WHERE id = :id"), {"id": ids[0]})
    assert privacy.purge_expired(store, Settings(data_dir=tmp_path, retention_days=1)).conversations == 1
    assert count(store.db, media) == 1 and count(store.db, message_parts) == 2  # the second still names it
    with store.db.begin() as conn:
        conn.execute(sa.text("UPDATE conversations SET updated_at = 0"))
    privacy.purge_expired(store, Settings(data_dir=tmp_path, retention_days=1))
    assert (count(store.db, media), count(store.db, message_parts)) == (0, 0)
