"""Issue 20's conversation features on the real SmolLM2-135M (`ember serve` in a subprocess, the shared
`live_server`): regenerate and edit-and-resend keep both branches and switch between them; a stated fact is
proposed (never kept), saved, answered with, and deleted; a person whose name differs by case sees none of
it. That a saved fact is in a later prompt, cited "from your memory", is pinned with the scripted engine
(test_memory), which can show its prompt; these run the same paths with a real model's own answers."""

from __future__ import annotations

from typing import Any

import httpx

TIMEOUT = 120


def chat(base: str, user: str, text: str | None, **extra: Any) -> httpx.Response:
    messages = [] if text is None else [{"role": "user", "content": text}]
    body = {"model": "ember-instant", "user": user, "messages": messages, "max_tokens": 24, "temperature": 0.8}
    return httpx.post(f"{base}/v1/chat/completions", json={**body, **extra}, timeout=TIMEOUT)


def shown(base: str, user: str, conversation: str) -> list[dict[str, Any]]:
    got = httpx.get(f"{base}/v1/conversations/{conversation}", params={"user": user}, timeout=TIMEOUT)
    assert got.status_code == 200, got.text
    messages: list[dict[str, Any]] = got.json()["messages"]
    return messages


def test_regenerate_and_edit_keep_branches_on_the_real_model(live_server: str) -> None:
    first = chat(live_server, "rhea", "Name a fruit.", seed=1)
    assert first.status_code == 200, first.text
    cid = first.headers["x-ember-conversation-id"]
    again = chat(live_server, "rhea", None, conversation_id=cid, replace=1, seed=2)  # the answer, regenerated
    assert again.status_code == 200, again.text
    answer = shown(live_server, "rhea", cid)[1]
    assert answer["siblings"] == [1, answer["seq"]] and answer["seq"] != 1
    assert answer["content"] == again.json()["choices"][0]["message"]["content"]
    edited = chat(live_server, "rhea", "Name a vegetable.", conversation_id=cid, replace=0, seed=3)
    assert edited.status_code == 200, edited.text
    turns = shown(live_server, "rhea", cid)
    assert turns[0]["content"] == "Name a vegetable." and len(turns[0]["siblings"]) == 2
    back = httpx.post(f"{live_server}/v1/conversations/{cid}/branch", params={"user": "rhea"}, json={"seq": 0})
    assert back.status_code == 200, back.text
    assert shown(live_server, "rhea", cid)[0]["content"] == "Name a fruit."
    other = httpx.get(f"{live_server}/v1/conversations/{cid}", params={"user": "Rhea"}, timeout=TIMEOUT)
    assert other.status_code == 404 and other.json()["error"]["type"]


def test_a_proposed_fact_is_saved_used_and_deleted_on_the_real_model(live_server: str) -> None:
    consent = httpx.patch(f"{live_server}/v1/me/consent", params={"user": "mira"}, json={"memory": True})
    assert consent.status_code == 200, consent.text
    said = chat(live_server, "mira", "I'm allergic to peanuts. Suggest a snack.")
    assert said.status_code == 200, said.text
    proposal = said.json()["memory_proposal"]
    assert proposal["kind"] == "allergy" and "peanuts" in proposal["text"]
    memories = f"{live_server}/v1/me/memories"
    assert httpx.get(memories, params={"user": "mira"}).json()["data"] == []  # proposed, not kept
    saved = httpx.post(memories, params={"user": "mira"}, json={"text": proposal["text"]})
    assert saved.status_code == 200, saved.text
    later = chat(live_server, "mira", "What do you know about me? Quote your memory.", max_tokens=48)
    assert later.status_code == 200, later.text
    assert later.json()["choices"][0]["message"]["content"].strip()
    assert httpx.get(memories, params={"user": "Mira"}).json()["data"] == []  # another person's name: nothing
    forgot = httpx.delete(f"{memories}/{saved.json()['id']}", params={"user": "mira"})
    assert forgot.status_code == 200, forgot.text
    assert httpx.get(memories, params={"user": "mira"}).json()["data"] == []
