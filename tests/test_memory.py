"""Memory a person can see and control: off by default; with it on, "remember that ..." keeps the fact (and
says so), instant and thinking are given the facts, health only with health_storage on; the facts are
listed, added and deleted through /v1/me/memories, exported and erased; each person reaches only their own
(names differing by case, prefix or Unicode form)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.policy.memory import remembered

from .conftest import make_settings

PEOPLE = ("max", "Max", "ma", "\u00e9mile", "e\u0301mile")


@pytest.fixture
def echo(tmp_path: Path) -> Any:
    role = {"engine": "fake", "model": "fake", "options": {"echo_prompt": True}}
    with TestClient(create_app(make_settings(tmp_path, chat_fast=role, chat=role))) as client:
        yield client


def say(client: TestClient, user: str, text: str, model: str = "ember-instant") -> str:
    body = {"model": model, "user": user, "messages": [{"role": "user", "content": text}]}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def memory_on(client: TestClient, user: str, **flags: bool) -> None:
    body = {"memory": True, **flags}
    assert client.patch("/v1/me/consent", params={"user": user}, json=body).json()["consent"]["memory"] is True


@pytest.mark.parametrize(
    ("text", "fact"),
    [
        ("Remember that I'm vegetarian.", "I'm vegetarian"),
        ("please remember my budget is usually 50 EUR", "my budget is usually 50 EUR"),
        ("Keep in mind that I live in Lyon!", "I live in Lyon"),
        ("Do you remember Paris?", None),
        ("What should I remember for the exam?", None),
    ],
)
def test_what_a_message_asks_to_remember(text: str, fact: str | None) -> None:
    assert remembered(text) == fact


def test_nothing_is_kept_or_used_while_memory_is_off(echo: TestClient) -> None:
    answer = say(echo, "olga", "Remember that I'm vegetarian.")
    assert "Saved to your memory" not in answer
    assert echo.get("/v1/me/memories", params={"user": "olga"}).json()["data"] == []
    refused = echo.post("/v1/me/memories", params={"user": "olga"}, json={"text": "I'm vegetarian"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "memory_off"
    assert echo.get("/v1/me", params={"user": "olga"}).json()["consent"]["memory"] is False


def test_a_remembered_fact_is_said_kept_and_used(echo: TestClient) -> None:
    memory_on(echo, "olga")
    answer = say(echo, "olga", "Remember that I'm vegetarian.")
    assert answer.startswith("Saved to your memory: “I'm vegetarian”")
    (kept,) = echo.get("/v1/me/memories", params={"user": "olga"}).json()["data"]
    assert kept["text"] == "I'm vegetarian" and kept["id"].startswith("mem_")
    for model in ("ember-instant", "ember-thinking", "ember-auto"):
        prompt = say(echo, "olga", "What should I cook tonight?", model)
        assert "- I'm vegetarian" in prompt and "from your memory" in prompt, model
    assert "I'm vegetarian" not in say(echo, "olga", "What should I cook tonight?", "ember-health")
    memory_on(echo, "olga", health_storage=True)
    assert "I'm vegetarian" in say(echo, "olga", "What should I cook tonight?", "ember-health")
    off = echo.patch("/v1/me/consent", params={"user": "olga"}, json={"memory": False})
    assert off.status_code == 200
    assert "I'm vegetarian" not in say(echo, "olga", "What should I cook tonight?")  # kept, but not used


def test_memories_are_listed_added_deleted_exported_and_erased_per_person(echo: TestClient) -> None:
    for user in PEOPLE:
        memory_on(echo, user)
        added = echo.post("/v1/me/memories", params={"user": user}, json={"text": f"fact of {user}"})
        assert added.status_code == 200 and added.json()["text"] == f"fact of {user}"
    ids = {u: echo.get("/v1/me/memories", params={"user": u}).json()["data"][0]["id"] for u in PEOPLE}
    for user in PEOPLE:
        assert [m["text"] for m in echo.get("/v1/me/memories", params={"user": user}).json()["data"]] == [
            f"fact of {user}"
        ]
        for other in PEOPLE:
            if other != user:
                gone = echo.delete(f"/v1/me/memories/{ids[other]}", params={"user": user})
                assert gone.status_code == 404
        exported = echo.get("/v1/me/export", params={"user": user}).json()["memories"]
        assert [m["text"] for m in exported] == [f"fact of {user}"]
    deleted = echo.delete(f"/v1/me/memories/{ids['max']}", params={"user": "max"})
    assert deleted.json() == {"id": ids["max"], "object": "memory.deleted", "deleted": True}
    assert echo.get("/v1/me/memories", params={"user": "max"}).json()["data"] == []
    erased = echo.delete("/v1/me", params={"user": "Max"}).json()
    assert erased["removed"]["memories"] == 1
    assert echo.get("/v1/me/memories", params={"user": "Max"}).json()["data"] == []
    assert len(echo.get("/v1/me/memories", params={"user": "ma"}).json()["data"]) == 1


@pytest.mark.parametrize("text", ["", "   ", "x" * 301, 7, None])
def test_a_bad_memory_is_refused(echo: TestClient, text: object) -> None:
    memory_on(echo, "pia")
    response = echo.post("/v1/me/memories", params={"user": "pia"}, json={"text": text})
    assert response.status_code == 400
    assert echo.get("/v1/me/memories", params={"user": "pia"}).json()["data"] == []
