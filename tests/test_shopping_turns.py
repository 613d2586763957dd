"""ember-shopping across turns: a follow-up refines the earlier intent, and the person's memory reaches the
answer (on the fake engine and the demo shop)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.shopping.demo import load_shop

from .conftest import make_settings
from .test_shopping import ANSWER, CACHE, INTENT, shop_settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cheaper?", {"query": "trail running shoes", "category": "Shoes", "budget": 90.0, "constraints": []}),
        ("in blue?", {"query": "trail running shoes", "category": "Shoes", "budget": 120.0, "constraints": ["blue"]}),
        ("any under 80?", {"query": "trail running shoes", "category": "Shoes", "budget": 80.0, "constraints": []}),
        ("what about books?", {"query": "books", "category": "Books", "budget": 120.0, "constraints": []}),
    ],
)
def test_a_follow_up_refines_the_earlier_intent(text: str, expected: dict[str, object]) -> None:
    from ember.shopping import intent as intents

    categories = ["Shoes", "Books", "Outdoor"]
    earlier = intents.parse(json.dumps({**INTENT, "budget": 120}), "trail running shoes under 120", categories)
    assert intents.is_follow_up(text, categories)
    refined = intents.refine(earlier, text, categories).as_dict()
    assert {k: refined[k] for k in expected} == expected and str(refined["source"]).endswith("+follow-up")
    assert not intents.is_follow_up("I need a warm jacket for winter hiking in the Alps", categories)


def test_cheaper_goes_under_the_lowest_price_shown_or_else_the_budget() -> None:
    from ember.modes.shopping import shown_prices
    from ember.shopping import intent as intents
    from ember.types import Message

    categories = ["Shoes"]
    earlier = intents.parse(json.dumps({**INTENT, "budget": 120}), "trail running shoes under 120", categories)
    assert intents.refine(earlier, "cheaper?", categories, [89.5, 74.99]).budget == 74.98
    assert intents.refine(earlier, "cheaper?", categories, []).budget == 90.0  # a quarter under 120
    assert intents.refine(earlier, "cheaper, under 50?", categories, [74.99]).budget == 50.0  # the stated one wins
    answer = "Try [2].\n\nRecommended:\n[1] Trail (Run), 1 (Shoes), 89.5 EUR\n[2] Fell shoe (Shoes), 74 EUR"
    turns = [Message("assistant", "Recommended:\n[1] Old (Shoes), 9 EUR"), Message("user", "x")]
    assert shown_prices([*turns, Message("assistant", answer)]) == [89.5, 74.0]
    assert shown_prices(turns) == [9.0] and shown_prices([Message("assistant", "no list")]) == []


def test_cheaper_after_a_recommendation_keeps_the_ask_and_goes_under_its_lowest_price(tmp_path: Path) -> None:
    """Turn 2 ("cheaper?") continues the conversation: the intent is turn 1's, its budget just under the
    lowest price turn 1 showed, and every product turn 2 shows is cheaper than all of turn 1's."""
    intent = json.dumps({**INTENT, "budget": 130})
    with TestClient(create_app(shop_settings(tmp_path, [intent, ANSWER]))) as client:
        load_shop(client.app.state.services.shop)  # type: ignore[attr-defined]
        body = {"model": "ember-shopping", "user": "ana", "include_trace": True}
        first = client.post(
            "/v1/chat/completions", json={**body, "messages": [{"role": "user", "content": "trail shoes under 130"}]}
        )
        conversation = first.headers["x-ember-conversation-id"]
        ask = [{"role": "user", "content": "cheaper?"}]
        second = client.post("/v1/chat/completions", json={**body, "messages": ask, "conversation_id": conversation})
    (step,) = second.json()["trace"]
    refined = json.loads(step["answer"])
    shown = [c["meta"]["price"] for c in first.json()["citations"] if c["kind"] == "product"]
    assert shown and refined["budget"] == round(min(shown) - 0.01, 2)
    assert refined["category"] == "Shoes" and refined["query"] == INTENT["query"]
    products = [c for c in second.json()["citations"] if c["kind"] == "product"]
    assert products and all(c["meta"]["price"] < min(shown) for c in products)


def test_the_shoppers_memory_reaches_the_answer(tmp_path: Path) -> None:
    """With memory on, a remembered budget is in the prompt the shopping answer is written from."""
    echo = {"engine": "fake", "model": "fake", "ctx_size": 8192, "options": {"echo_prompt": True}}
    settings = make_settings(tmp_path, chat_fast=echo).model_copy(update={"cache_dir": CACHE})
    with TestClient(create_app(settings)) as client:
        load_shop(client.app.state.services.shop)  # type: ignore[attr-defined]
        client.patch("/v1/me/consent", params={"user": "ana"}, json={"memory": True})
        assert client.post("/v1/me/memories", params={"user": "ana"}, json={"text": "my budget is 50 EUR"}).is_success
        ask = {"model": "ember-shopping", "user": "ana", "messages": [{"role": "user", "content": "trail shoes"}]}
        answer = client.post("/v1/chat/completions", json=ask).json()["choices"][0]["message"]["content"]
    assert "- my budget is 50 EUR" in answer and "from your memory" in answer
