"""Memory proposals: a message that states a durable fact about its writer ("I'm vegetarian") is not kept but
proposed, as the `memory_proposal` extension of the answer, only with the person's `memory` consent on; the
rules find first-person statements of diet, allergies, budget, location, family and preferences, and leave
questions, negations, hypotheticals, passing states and other people's facts alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.api.wire import MemoryProposalOut
from ember.policy.memory import PROPOSAL_RULES, proposal
from ember.types import MemoryProposal

from .conftest import make_settings, sse_events


@pytest.mark.parametrize(
    ("text", "fact", "kind"),
    [
        ("I'm vegetarian.", "I'm vegetarian", "diet"),
        ("I'm vegetarian, what should I cook tonight?", "I'm vegetarian", "diet"),
        ("btw i\u2019m vegan", "I'm vegan", "diet"),
        ("By the way, I keep kosher.", "I keep kosher", "diet"),
        ("I'm allergic to peanuts", "I'm allergic to peanuts", "allergy"),
        ("I have a severe nut allergy.", "I have a severe nut allergy", "allergy"),
        ("I'm lactose intolerant", "I'm lactose intolerant", "allergy"),
        ("my budget is usually 50 EUR", "my budget is usually 50 EUR", "budget"),
        ("My monthly budget for groceries is 300 EUR.", "My monthly budget for groceries is 300 EUR", "budget"),
        ("I usually spend about 40 euros on gifts", "I usually spend about 40 euros on gifts", "budget"),
        ("I live in Lyon.", "I live in Lyon", "location"),
        ("Hi! I live in Lyon and I'd like museum tips.", "I live in Lyon", "location"),
        ("We live near Lyon, any hikes nearby?", "We live near Lyon", "location"),
        ("I'm from Lisbon", "I'm from Lisbon", "location"),
        ("I have two kids and a dog", "I have two kids and a dog", "family"),
        ("I'm married.", "I'm married", "family"),
        ("My wife's name is Ana", "My wife's name is Ana", "family"),
        ("My favourite colour is teal", "My favourite colour is teal", "preference"),
        ("I prefer short answers.", "I prefer short answers", "preference"),
        ("I really love jazz, can you suggest albums?", "I really love jazz", "preference"),
    ],
)
def test_a_stated_fact_is_found(text: str, fact: str, kind: str) -> None:
    assert proposal(text) == MemoryProposal(fact, kind)


@pytest.mark.parametrize(
    "text",
    [
        "Remember that I'm vegetarian.",  # a command: kept at once, not proposed
        "Am I vegetarian?",
        "I'm vegetarian?",
        "Do you think I live in Lyon?",
        "What if I'm allergic to cats?",
        "I'm not vegetarian.",
        "I don't live in Lyon anymore.",
        "I have no kids.",
        "If I were vegetarian, what would I eat?",
        "Imagine I live in Lyon.",
        "In my story, I live in Lyon.",
        "Let's say, I live in Lyon.",
        "I would like to live in Lyon.",
        "I'd like a vegetarian recipe.",
        "I live in Lyon this month.",
        "I'm on a diet today.",
        "My friend is vegetarian.",
        "My sister lives in Lyon.",
        'She said "I live in Lyon".',
        "I used to be vegetarian.",
        "I lived in Lyon for years.",
        "My budget is 50 EUR for this gift.",
        "I like this answer.",
        "I love it!",
        "I prefer the second option.",
        "I have a question about Lyon.",
        "I'm from the marketing team.",
        "What should I cook tonight?",
    ],
)
def test_a_near_miss_is_not_proposed(text: str) -> None:
    assert proposal(text) is None


def test_only_the_start_of_a_long_message_is_read() -> None:
    assert proposal("x" * 3000 + ". I live in Lyon.") is None
    assert proposal("Here it is. I live in Lyon.") == MemoryProposal("I live in Lyon", "location")


def test_every_rule_kind_is_documented_on_the_wire() -> None:
    for kind, _ in PROPOSAL_RULES:
        assert MemoryProposalOut.of(MemoryProposal("x", kind)).kind == kind


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path, chat_fast={"engine": "fake", "model": "fake"}))) as client:
        yield client


def ask(client: TestClient, user: str, text: str, model: str = "ember-instant") -> dict[str, Any]:
    body = {"model": model, "user": user, "messages": [{"role": "user", "content": text}]}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def kept(client: TestClient, user: str) -> list[str]:
    return [m["text"] for m in client.get("/v1/me/memories", params={"user": user}).json()["data"]]


def memory_on(client: TestClient, user: str) -> None:
    assert client.patch("/v1/me/consent", params={"user": user}, json={"memory": True}).status_code == 200


def test_no_proposal_without_memory_consent(api: TestClient) -> None:
    assert "memory_proposal" not in ask(api, "noor", "I'm vegetarian, what should I cook?")
    assert kept(api, "noor") == []


def test_a_proposal_is_offered_and_nothing_kept_until_saved(api: TestClient) -> None:
    memory_on(api, "noor")
    answer = ask(api, "noor", "I'm vegetarian, what should I cook?")
    assert answer["memory_proposal"] == {"text": "I'm vegetarian", "kind": "diet"}
    assert "Saved to your memory" not in answer["choices"][0]["message"]["content"]
    assert kept(api, "noor") == []  # only offered
    assert "memory_proposal" not in ask(api, "noor", "What should I cook?")  # nothing stated
    saved = api.post("/v1/me/memories", params={"user": "noor"}, json={"text": answer["memory_proposal"]["text"]})
    assert saved.status_code == 200 and kept(api, "noor") == ["I'm vegetarian"]
    assert "memory_proposal" not in ask(api, "noor", "I'm VEGETARIAN.")  # already kept
    memory_on(api, "Noor")  # another person: what noor kept is not theirs
    assert ask(api, "Noor", "I'm vegetarian.")["memory_proposal"]["text"] == "I'm vegetarian"
    assert kept(api, "Noor") == [] and kept(api, "noor") == ["I'm vegetarian"]


def test_a_remember_command_is_kept_not_proposed(api: TestClient) -> None:
    memory_on(api, "ines")
    answer = ask(api, "ines", "Remember that I live in Lyon.")
    assert "memory_proposal" not in answer and kept(api, "ines") == ["I live in Lyon"]


def test_health_proposes_only_with_health_storage_on(api: TestClient) -> None:
    memory_on(api, "omar")
    assert "memory_proposal" not in ask(api, "omar", "I'm allergic to penicillin.", "ember-health")
    api.patch("/v1/me/consent", params={"user": "omar"}, json={"health_storage": True})
    proposed = ask(api, "omar", "I'm allergic to penicillin.", "ember-health")["memory_proposal"]
    assert proposed == {"text": "I'm allergic to penicillin", "kind": "allergy"}


def test_a_streamed_answer_carries_the_proposal_after_its_finish(api: TestClient) -> None:
    memory_on(api, "lea")
    body = {
        "model": "ember-instant",
        "user": "lea",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "My budget is usually 50 EUR. Any headphones?"}],
    }
    with api.stream("POST", "/v1/chat/completions", json=body) as reply:
        events = sse_events(list(reply.iter_lines()))
    carrying = [i for i, e in enumerate(events) if isinstance(e, dict) and "memory_proposal" in e]
    chunks = [e for e in events if isinstance(e, dict)]
    finished = [i for i, e in enumerate(chunks) if (e["choices"] or [{}])[0].get("finish_reason")]
    assert len(carrying) == 1 and carrying[0] > finished[0]
    assert events[carrying[0]]["memory_proposal"] == {"text": "My budget is usually 50 EUR", "kind": "budget"}
    assert events[-1] == "[DONE]" and kept(api, "lea") == []
