"""Managing one's stored conversations: rename, delete one, search by text, export one as Markdown or JSON;
each reaches only the asker's own (people whose names differ by case, prefix or Unicode form included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

PEOPLE = ("ana", "Ana", "an", "\u00e9lise", "e\u0301lise")


def say(client: TestClient, user: str, text: str, conversation: str | None = None) -> str:
    body = {"model": "ember-instant", "user": user, "messages": [{"role": "user", "content": text}]}
    if conversation:
        body["conversation_id"] = conversation
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.headers["x-ember-conversation-id"]


def test_rename_delete_search_and_export_reach_only_ones_own(client: TestClient) -> None:
    ids = {user: say(client, user, f"tents for {user} 50% off_sale") for user in PEOPLE}
    for user, conversation in ids.items():
        for other in PEOPLE:
            if other != user:  # another person's conversation, asked as oneself: as if it did not exist
                url = f"/v1/conversations/{ids[other]}"
                assert client.patch(url, params={"user": user}, json={"title": "x"}).status_code == 404
                assert client.delete(url, params={"user": user}).status_code == 404
                assert client.get(f"{url}/export", params={"user": user}).status_code == 404
        found = client.get("/v1/conversations", params={"user": user, "q": "TENTS"}).json()["data"]
        assert [c["id"] for c in found] == [conversation]
    for user in PEOPLE:  # nothing was renamed or deleted by anyone else
        (listed,) = client.get("/v1/conversations", params={"user": user}).json()["data"]
        assert listed["title"].startswith(f"tents for {user}")
    renamed = client.patch(f"/v1/conversations/{ids['ana']}", params={"user": "ana"}, json={"title": " Camping "})
    assert renamed.status_code == 200 and renamed.json()["title"] == "Camping"
    gone = client.delete(f"/v1/conversations/{ids['an']}", params={"user": "an"})
    assert gone.json() == {"id": ids["an"], "object": "conversation.deleted", "deleted": True}
    assert client.get(f"/v1/conversations/{ids['an']}", params={"user": "an"}).status_code == 404
    assert client.get("/v1/conversations", params={"user": "an"}).json()["data"] == []
    assert len(client.get("/v1/conversations", params={"user": "Ana"}).json()["data"]) == 1


def test_search_matches_messages_and_titles_and_treats_wildcards_as_text(client: TestClient) -> None:
    first = say(client, "zoe", "What about kayaks?")
    say(client, "zoe", "and in blue?", first)  # found by its second message
    second = say(client, "zoe", "Bread recipes")
    client.patch(f"/v1/conversations/{second}", params={"user": "zoe"}, json={"title": "Baking 100%"})
    third = say(client, "zoe", "Cheese")

    def found(text: str) -> list[str]:
        return [c["id"] for c in client.get("/v1/conversations", params={"user": "zoe", "q": text}).json()["data"]]

    assert found("BLUE") == [first]
    assert found("100%") == [second]
    assert found("%") == [second]  # a LIKE wildcard in the text is the character itself
    assert found("_") == []
    assert sorted(found("e")) == sorted([first, second, third])
    assert client.get("/v1/conversations", params={"user": "zoe", "q": ""}).status_code == 400


def test_export_one_conversation_as_markdown_and_json(client: TestClient) -> None:
    conversation = say(client, "kim", "Hello there")
    say(client, "kim", "Second turn", conversation)
    md = client.get(f"/v1/conversations/{conversation}/export", params={"user": "kim"})
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert md.headers["content-disposition"] == f'attachment; filename="{conversation}.md"'
    text = md.text
    assert text.startswith("# Hello there") and text.index("Second turn") > text.index("Hello there")
    assert text.count("## user") == 2 and text.count("## assistant") == 2
    data = client.get(f"/v1/conversations/{conversation}/export", params={"user": "kim", "format": "json"})
    body = json.loads(data.content)
    assert data.headers["content-disposition"].endswith('.json"')
    assert body == client.get(f"/v1/conversations/{conversation}", params={"user": "kim"}).json()
    bad = client.get(f"/v1/conversations/{conversation}/export", params={"user": "kim", "format": "pdf"})
    assert bad.status_code == 400 and bad.json()["error"]["param"]


@pytest.mark.parametrize("title", ["", "   ", "x" * 201, 5, None])
def test_a_bad_title_is_refused_and_the_old_one_kept(client: TestClient, title: object) -> None:
    conversation = say(client, "lee", "Original question")
    response = client.patch(f"/v1/conversations/{conversation}", params={"user": "lee"}, json={"title": title})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    (listed,) = client.get("/v1/conversations", params={"user": "lee"}).json()["data"]
    assert listed["title"] == "Original question"


def test_the_cli_lists_searches_renames_exports_and_deletes(client: TestClient, tmp_path: Path) -> None:
    """`ember conversations` on the same database as the server: only the named person's conversations."""
    from .conftest import run_cli

    first = say(client, "cli-ana", "Kayaks for rivers")
    say(client, "cli-Ana", "Kayaks for lakes")  # another person, a name differing by case
    env = {"EMBER_DATA_DIR": str(client.app.state.settings.data_dir)}  # type: ignore[attr-defined]
    listed = run_cli(["conversations", "list", "--user", "cli-ana", "--search", "KAYAK"], "", env)
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    assert line.startswith(first) and line.endswith("Kayaks for rivers")
    renamed = run_cli(["conversations", "rename", first, "River trip", "--user", "cli-ana"], "", env)
    assert renamed.stdout.strip() == f"{first}  River trip"
    exported = run_cli(["conversations", "export", first, "--user", "cli-ana"], "", env)
    assert exported.stdout.startswith("# River trip") and "Kayaks for rivers" in exported.stdout
    theirs = run_cli(["conversations", "delete", first, "--user", "cli-Ana", "--yes"], "", env)
    assert theirs.returncode == 1 and "not found" in theirs.stderr
    gone = run_cli(["conversations", "delete", first, "--user", "cli-ana", "--yes"], "", env)
    assert gone.returncode == 0 and gone.stdout.strip() == f"deleted {first} (2 messages)"
    assert run_cli(["conversations", "list", "--user", "cli-ana"], "", env).stdout == ""
