"""Conversations that keep everything: regenerating an answer or editing a message (the chat request's
`replace`) stores the new turns beside the old ones; reading a conversation shows its active branch, each turn
with its siblings, and `POST /v1/conversations/{id}/branch` shows another. Through the API on the fake engine,
in the store (SQLite and PostgreSQL) and its migration, in exports and the CLI; people whose names differ by
case, prefix or Unicode form reach only their own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.engines.fake import FakeEngine
from ember.store import migrations
from ember.store.migrations import MIGRATIONS, migrate
from ember.store.sql import SqlStore, open_db
from ember.types import Person

from .conftest import make_settings, run_cli, sse_events

PEOPLE = ("ana", "Ana", "an", "\u00e9lise", "e\u0301lise")
REPLIES = ["first answer", "second answer", "third answer", "fourth answer", "fifth answer"]
Turn = tuple[int, str, str, list[int]]  # seq, role, content, siblings


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    fast = {"engine": "fake", "model": "fake", "ctx_size": 512, "options": {"replies": REPLIES}}
    with TestClient(create_app(make_settings(tmp_path, chat_fast=fast))) as c:
        yield c


def chat(client: TestClient, user: str, text: str | None, **extra: Any) -> httpx.Response:
    """A chat request as `user`: `text` as the new message (None: no message), and `extra` fields."""
    messages = [] if text is None else [{"role": "user", "content": text}]
    return client.post(
        "/v1/chat/completions", json={"model": "ember-instant", "user": user, "messages": messages, **extra}
    )


def turns(client: TestClient, user: str, conversation: str) -> list[Turn]:
    got = client.get(f"/v1/conversations/{conversation}", params={"user": user})
    assert got.status_code == 200, got.text
    return [(m["seq"], m["role"], m["content"], m["siblings"]) for m in got.json()["messages"]]


def prompt_seen(client: TestClient) -> list[tuple[str, str]]:
    engine: FakeEngine = client.app.state.pipeline.engines.loaded()["chat-fast"]  # type: ignore[attr-defined]
    return [(m.role, m.content) for m in engine.calls[-1][0] if m.role != "system"]


def two_exchanges(client: TestClient, user: str) -> str:
    cid = chat(client, user, "Where to camp?").headers["x-ember-conversation-id"]
    assert chat(client, user, "And in winter?", conversation_id=cid).status_code == 200
    return cid


def test_regenerating_and_editing_add_branches_and_keep_the_old_ones(client: TestClient) -> None:
    cid = two_exchanges(client, "kai")
    again = chat(client, "kai", None, conversation_id=cid, replace=3)  # answer the second question again
    assert again.status_code == 200 and again.json()["choices"][0]["message"]["content"] == "third answer"
    assert prompt_seen(client) == [
        ("user", "Where to camp?"),
        ("assistant", "first answer"),
        ("user", "And in winter?"),
    ]
    assert turns(client, "kai", cid) == [
        (0, "user", "Where to camp?", [0]),
        (1, "assistant", "first answer", [1]),
        (2, "user", "And in winter?", [2]),
        (4, "assistant", "third answer", [3, 4]),
    ]
    edited = chat(client, "kai", "And in spring?", conversation_id=cid, replace=2)
    assert edited.status_code == 200 and edited.headers["x-ember-conversation-id"] == cid
    assert prompt_seen(client) == [
        ("user", "Where to camp?"),
        ("assistant", "first answer"),
        ("user", "And in spring?"),
    ]
    assert turns(client, "kai", cid)[2:] == [
        (5, "user", "And in spring?", [2, 5]),
        (6, "assistant", "fourth answer", [6]),
    ]
    chat(client, "kai", "Thanks", conversation_id=cid)  # plain continuing goes on at the end of the branch shown
    assert [t[0] for t in turns(client, "kai", cid)] == [0, 1, 5, 6, 7, 8]
    shown = client.post(f"/v1/conversations/{cid}/branch", params={"user": "kai"}, json={"seq": 2})
    assert shown.status_code == 200
    assert [m["content"] for m in shown.json()["messages"]][2:] == ["And in winter?", "third answer"]  # its newest
    back = client.post(f"/v1/conversations/{cid}/branch", params={"user": "kai"}, json={"seq": 3})
    assert [(m["seq"], m["siblings"]) for m in back.json()["messages"]][2:] == [(2, [2, 5]), (3, [3, 4])]
    chat(client, "kai", "Tell me more", conversation_id=cid)  # continues the old branch, shown again
    assert prompt_seen(client)[-3:] == [
        ("user", "And in winter?"),
        ("assistant", "second answer"),
        ("user", "Tell me more"),
    ]


def test_a_streamed_regeneration_is_stored_as_a_sibling(client: TestClient) -> None:
    cid = two_exchanges(client, "sol")
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "ember-instant",
            "user": "sol",
            "messages": [],
            "conversation_id": cid,
            "replace": 1,
            "stream": True,
        },
    ) as streamed:
        assert streamed.status_code == 200 and streamed.headers["x-ember-conversation-id"] == cid
        events = sse_events(list(streamed.iter_lines()))
    assert events[-1] == "[DONE]"
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"]) == "third answer"
    assert turns(client, "sol", cid) == [(0, "user", "Where to camp?", [0]), (4, "assistant", "third answer", [1, 4])]


def test_exports_show_the_active_branch_and_the_persons_export_every_turn(client: TestClient) -> None:
    cid = two_exchanges(client, "mia")
    chat(client, "mia", None, conversation_id=cid, replace=3)
    md = client.get(f"/v1/conversations/{cid}/export", params={"user": "mia"}).text
    assert "third answer" in md and "second answer" not in md and "## assistant (2/2)" in md
    data = client.get(f"/v1/conversations/{cid}/export", params={"user": "mia", "format": "json"}).json()
    assert data == client.get(f"/v1/conversations/{cid}", params={"user": "mia"}).json()
    (held,) = client.get("/v1/me/export", params={"user": "mia"}).json()["conversations"]
    every = [(m["seq"], m["parent"], m["content"]) for m in held["messages"]]
    assert every == [
        (0, None, "Where to camp?"),
        (1, 0, "first answer"),
        (2, 1, "And in winter?"),
        (3, 2, "second answer"),
        (4, 2, "third answer"),
    ]


@pytest.mark.parametrize(
    ("extra", "status", "param"),
    [
        ({"replace": 0}, 400, "replace"),  # no conversation_id
        ({"replace": -1, "conversation_id": "{cid}"}, 400, "replace"),
        ({"replace": "3", "conversation_id": "{cid}"}, 400, "replace"),
        ({"replace": 1.5, "conversation_id": "{cid}"}, 400, "replace"),
        ({"replace": 99, "conversation_id": "{cid}"}, 404, "replace"),
        ({"conversation_id": "{cid}"}, 400, "messages"),  # no message, nothing replaced
        ({"replace": 2, "conversation_id": "{cid}"}, 400, "messages"),  # a question replaced by nothing
        ({"replace": 0, "conversation_id": "{cid}"}, 400, "messages"),  # the first turn replaced by nothing
    ],
)
def test_bad_replacements_are_refused_and_change_nothing(
    client: TestClient, extra: dict[str, Any], status: int, param: str
) -> None:
    cid = two_exchanges(client, "lou")
    before = client.get(f"/v1/conversations/{cid}", params={"user": "lou"}).json()
    body = {k: (v.format(cid=cid) if isinstance(v, str) and k == "conversation_id" else v) for k, v in extra.items()}
    refused = chat(client, "lou", None, **body)
    assert refused.status_code == status, refused.text
    assert refused.json()["error"]["param"] == param and refused.json()["error"]["type"]
    assert client.get(f"/v1/conversations/{cid}", params={"user": "lou"}).json() == before


@pytest.mark.parametrize("body", [{}, {"seq": -1}, {"seq": "2"}, {"seq": 2, "other": 1}, {"seq": None}, [2]])
def test_a_bad_branch_choice_is_refused(client: TestClient, body: Any) -> None:
    cid = two_exchanges(client, "ivo")
    refused = client.post(f"/v1/conversations/{cid}/branch", params={"user": "ivo"}, json=body)
    assert refused.status_code == 400 and refused.json()["error"]["type"] == "invalid_request_error"
    missing = client.post(f"/v1/conversations/{cid}/branch", params={"user": "ivo"}, json={"seq": 4})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "seq"


def test_replacing_or_switching_reaches_only_ones_own(client: TestClient) -> None:
    ids = {user: two_exchanges(client, user) for user in PEOPLE}
    before = {user: client.get(f"/v1/conversations/{ids[user]}", params={"user": user}).json() for user in PEOPLE}
    for user in PEOPLE:
        for other in PEOPLE:
            if other == user:
                continue
            theirs = ids[other]  # another person's conversation, asked as oneself: as if it did not exist
            assert chat(client, user, None, conversation_id=theirs, replace=3).status_code == 404
            assert chat(client, user, "mine?", conversation_id=theirs, replace=2).status_code == 404
            switched = client.post(f"/v1/conversations/{theirs}/branch", params={"user": user}, json={"seq": 1})
            assert switched.status_code == 404 and "Where to camp" not in switched.text
    for user in PEOPLE:  # nothing was added to or changed in anyone's conversation
        assert client.get(f"/v1/conversations/{ids[user]}", params={"user": user}).json() == before[user]
    assert chat(client, "Ana", None, conversation_id=ids["Ana"], replace=3).status_code == 200
    assert [t[3] for t in turns(client, "Ana", ids["Ana"])][-1] == [3, 4]
    assert client.get(f"/v1/conversations/{ids['ana']}", params={"user": "ana"}).json() == before["ana"]


def test_stored_conversations_become_single_branches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """0011 on a database with conversations: every turn follows the one before it, the last is shown,
    nothing is lost, and the title counts as cut from the first message."""
    url = f"sqlite:///{tmp_path / 'ember.db'}"
    engine = open_db(url)
    try:
        monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:10])
        migrate(engine)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO conversations (id, tenant, user_id, mode, title, created_at, updated_at)"
                    " VALUES ('conv_a', '', 'ana', 'ember-instant', 'Old', 1, 2)"
                )
            )
            for seq, role in enumerate(("user", "assistant", "user", "assistant")):
                conn.execute(
                    sa.text(
                        "INSERT INTO messages (conversation_id, seq, role, content, created_at)"
                        " VALUES ('conv_a', :s, :r, :t, 1)"
                    ),
                    {"s": seq, "r": role, "t": f"turn {seq}"},
                )
        monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS)
        assert migrate(engine) == ["0011_branches_and_titles"]
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT active_seq, title_by FROM conversations")).one() == (3, "message")
    finally:
        engine.dispose()
    store = SqlStore(url)
    try:
        got = store.get_conversation("conv_a", Person("", "ana"))
        assert [(m["seq"], m["parent"], m["siblings"], m["content"]) for m in got["messages"]] == [
            (n, None if n == 0 else n - 1, [n], f"turn {n}") for n in range(4)
        ]
        assert store.write_title("conv_a", "A model's title")  # the stored title counts as the cut one
        assert store.get_conversation("conv_a", Person("", "ana"))["title"] == "A model's title"
    finally:
        store.close()


def test_the_cli_shows_the_active_branch_and_switches(client: TestClient) -> None:
    cid = two_exchanges(client, "cli-kai")
    chat(client, "cli-kai", None, conversation_id=cid, replace=3)
    env = {"EMBER_DATA_DIR": str(client.app.state.settings.data_dir)}  # type: ignore[attr-defined]
    shown = run_cli(["conversations", "show", cid, "--user", "cli-kai"], "", env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "Where to camp?" and lines[-1].split() == ["4", "assistant", "2/2", "third", "answer"]
    switched = run_cli(["conversations", "branch", cid, "3", "--user", "cli-kai"], "", env)
    assert switched.returncode == 0, switched.stderr
    assert switched.stdout.splitlines()[-1].split() == ["3", "assistant", "1/2", "second", "answer"]
    theirs = run_cli(["conversations", "branch", cid, "4", "--user", "cli-Kai"], "", env)
    assert theirs.returncode == 1 and "not found" in theirs.stderr
    assert turns(client, "cli-kai", cid)[-1][:3] == (3, "assistant", "second answer")
    exported = run_cli(["conversations", "export", cid, "--user", "cli-kai", "--format", "json"], "", env)
    assert json.loads(exported.stdout)["messages"][-1]["seq"] == 3


def test_an_edit_carries_its_own_images_and_the_old_version_keeps_its(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_media import BLIND, Who, app_for, image_part, png, sha, text

    with app_for(make_settings(tmp_path, chat_fast=BLIND), monkeypatch) as client:
        ann = Who("ann")
        ann.consent(client, media_storage=True)
        cid = ann.send(client, text("look"), image_part(png(1)))
        ann.send(client, text("and this"), image_part(png(3)), conversation=cid)  # turn 2
        assert chat(client, "ann", "no image now", conversation_id=cid, replace=2).status_code == 200
        shown = ann.turns(client, cid)
        assert (shown[2]["seq"], shown[2]["siblings"]) == (4, [2, 4]) and "parts" not in shown[2]
        assert shown[0]["parts"][0]["sha256"] == sha(png(1))
        with_image = {"role": "user", "content": [text("this one"), image_part(png(4))]}
        body = {"model": "ember-instant", "user": "ann", "conversation_id": cid, "replace": 4, "messages": [with_image]}
        assert client.post("/v1/chat/completions", json=body).status_code == 200
        (part,) = ann.turns(client, cid)[2]["parts"]
        assert ann.turns(client, cid)[2]["seq"] == 6 and part["sha256"] == sha(png(4)) and part["stored"] is True
        back = client.post(f"/v1/conversations/{cid}/branch", params={"user": "ann"}, json={"seq": 2})
        (old,) = back.json()["messages"][2]["parts"]
        assert old["sha256"] == sha(png(3)) and ann.get(client, old["url"]).content == png(3)
