"""Health: red-flag triage on the project's message sets, dose requests, the knowledge index built from
the real packaged sources, and `ember-health` answers (triage first, dose refusal, real citations)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.assets.assemble import ensure_asset
from ember.assets.catalogue import CATALOGUE
from ember.engines.embeddings import Embedder
from ember.medical.knowledge import KnowledgeIndex, build_index, icd10cm_entries, index_dir
from ember.medical.triage import DOSE_REFUSAL, Triager, asks_for_dose, triage
from ember.modes.health import DISCLAIMER

from .conftest import make_settings

DATA = Path(__file__).parent / "data"
CACHE = Path.home() / ".cache" / "ember"


def rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(ensure_asset(CATALOGUE["embed"], CACHE))


def test_triage_set_is_big_and_balanced() -> None:
    data = rows("triage.jsonl")
    assert len(data) >= 60 and sum(r["red"] for r in data) == len(data) // 2


def test_rules_alone_catch_every_red_flag_in_the_set() -> None:
    missed = [r["text"] for r in rows("triage.jsonl") if r["red"] and not triage(r["text"]).urgent]
    assert missed == []


@pytest.mark.parametrize(
    ("name", "most_false"),
    [("triage.jsonl", 5), ("triage_heldout.jsonl", 1), ("triage_general.jsonl", 2), ("triage_fresh.jsonl", 4)],
)
def test_rules_and_meaning_recall_every_red_flag(embedder: Embedder, name: str, most_false: int) -> None:
    """Measured (docs/health.md): false alarms 4/35, 0/10, 0/15 and 4/20 (the fresh set's were 8/20 before
    negation and past events were read; its goal, 2/20, is not met)."""
    triager = Triager(embedder)
    data = rows(name)
    missed = [r["text"] for r in data if r["red"] and not triager(r["text"]).urgent]
    false_alarms = [r["text"] for r in data if not r["red"] and triager(r["text"]).urgent]
    assert missed == []
    assert len(false_alarms) <= most_false, false_alarms


@pytest.mark.parametrize(
    ("text", "fires"),
    [
        ("I have no chest pain, only a cough", ()),
        ("My mother had a stroke in 2019 and walks with a cane now", ()),
        ("no fever and my neck is fine", ()),
        ("I don't have chest pain but I can't breathe", ("breathing emergency",)),
        ("He is not breathing!", ("breathing emergency",)),
        ("she is no longer breathing", ("breathing emergency",)),
        ("No, her face is drooping on one side right now", ("stroke signs",)),
        ("I'm not suicidal but I want to kill myself sometimes", ("suicidal thoughts",)),
        ("I'm not suicidal", ("suicidal thoughts",)),  # suicide and overdose are read in the whole text
        ("I had a heart attack last year and now my chest hurts and my arm is numb", ("heart attack signs",)),
    ],
)
def test_negations_and_past_events_are_not_happening_now(text: str, fires: tuple[str, ...]) -> None:
    assert triage(text).categories == fires


def test_general_questions_about_emergencies_are_not_emergencies() -> None:
    assert not triage("What are the warning signs of a stroke?").urgent
    assert triage("Is it a stroke if my arm suddenly went numb on one side?").urgent
    assert triage("Is suicide painful?").urgent  # suicide and overdose always fire, however phrased


def test_triage_message_says_what_to_do() -> None:
    found = triage("I want to kill myself")
    assert found.categories == ("suicidal thoughts",) and "988" in found.message()
    assert "emergency number" in triage("my dad's face is drooping and his speech is slurred").message()
    assert triage("what is a normal resting heart rate?").message() == ""


@pytest.mark.parametrize(
    ("text", "dose"),
    [
        ("How much ibuprofen should I take for a headache?", True),
        ("What dose of amoxicillin for my 4 year old?", True),
        ("Can I take 2000 mg of paracetamol?", True),
        ("How often can I take aspirin?", True),
        ("What is ibuprofen used for?", False),
        ("How many hours of sleep do I need?", False),
    ],
)
def test_dose_requests(text: str, dose: bool) -> None:
    assert asks_for_dose(text) is dose


def test_small_index_from_the_real_sources(tmp_path: Path, embedder: Embedder) -> None:
    directory = build_index(tmp_path / "k", embedder, limit=400, sources={"icd-10-cm": icd10cm_entries})
    index = KnowledgeIndex(directory, embedder)
    try:
        assert len(index) == 400 and not (tmp_path / "k.partial").exists()
        cholera = index.get("ICD-10-CM:A00")
        assert cholera is not None and cholera.title == "A00 Cholera" and "icd10cm" in cholera.url
        hits = index.search("cholera infection with watery diarrhoea", 3)
        assert hits[0].entry.id.startswith("ICD-10-CM:A00")
        assert index.keyword_ranks("the of and") == []  # stopwords only: no keyword query
        asked = index.search("What does ICD-10 code A01 cover?", 3)
        assert asked[0].entry.id == "ICD-10-CM:A01" and len(asked) == 3  # the code itself, before its subdivisions
        assert index.search("what is A01.0?", 1)[0].entry.id == "ICD-10-CM:A01.0"
        assert index.code_ranks("vitamin A01 levels") == []  # a bare code needs "ICD" or "code" beside it
    finally:
        index.close()


def test_full_index_finds_phenotypes_and_codes(health_client: TestClient) -> None:
    index = health_client.app.state.services.knowledge.open_index()  # type: ignore[attr-defined]
    assert index is not None
    assert len(index) > 40_000
    seizures = index.search("seizure", 5)
    assert all("seizure" in h.entry.text.lower() for h in seizures) and any(
        h.entry.id.startswith("HPO:") for h in seizures
    )
    assert any(h.entry.id.startswith("ICD-10-CM:E11") for h in index.search("type 2 diabetes mellitus", 5))
    assert any(
        h.entry.id.startswith("OMIM:") or h.entry.id.startswith("ORPHA:") for h in index.search("Marfan syndrome", 5)
    )


@pytest.fixture(scope="module")
def health_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """ember-health on the fake chat engine with the real, full knowledge index (built by `make test`)."""
    embed_dir = ensure_asset(CATALOGUE["embed"], CACHE)
    if not (index_dir(CACHE, embed_dir) / "vectors.npy").is_file():
        pytest.skip("the health knowledge index is not built (make test runs `ember health build`)")
    tmp = tmp_path_factory.mktemp("health")
    scripted = {"engine": "fake", "model": "f", "options": {"replies": ["See [1]."]}}
    settings = make_settings(tmp, chat_fast=scripted, chat=scripted)  # ember-health answers on `chat`
    settings.cache_dir = CACHE
    with TestClient(create_app(settings)) as client:
        ask(client, "hello")  # loads the index and the triage embedder
        yield client


def ask(client: TestClient, text: str) -> dict[str, Any]:
    resp = client.post(
        "/v1/chat/completions", json={"model": "ember-health", "messages": [{"role": "user", "content": text}]}
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_red_flag_instruction_comes_first(health_client: TestClient) -> None:
    answer = ask(health_client, "my husband has crushing chest pain and is sweating")["choices"][0]["message"][
        "content"
    ]
    assert answer.startswith("**This may be an emergency.** Call your local emergency number now")
    assert answer.rstrip().endswith(f"_{DISCLAIMER}_")


def test_auto_routed_to_health_shows_crisis_resources_once(health_client: TestClient) -> None:
    """The pipeline shows them before ember-auto routes; ember-health's own triage must not repeat them,
    and still adds what only it knows (chest pain)."""
    body = {"model": "ember-auto", "messages": [{"role": "user", "content": "I took an overdose of my pills"}]}
    data = health_client.post("/v1/chat/completions", json=body).json()
    assert data["route"]["target"] == "ember-health"
    text = data["choices"][0]["message"]["content"]
    assert text.count("This may be an emergency") == 1 and text.count("Poison") <= 1
    direct = ask(health_client, "I took an overdose of my pills")["choices"][0]["message"]["content"]
    assert direct.count("This may be an emergency") == 1  # ember-health alone: its own triage shows them
    mixed = {"model": "ember-auto", "messages": [{"role": "user", "content": "I overdosed and have chest pain"}]}
    text = health_client.post("/v1/chat/completions", json=mixed).json()["choices"][0]["message"]["content"]
    assert text.count("This may be an emergency") == 2  # the crisis notice, then health's chest-pain advice
    assert "emergency number" in text.split("This may be an emergency")[2]


def test_dose_question_is_declined(health_client: TestClient) -> None:
    answer = ask(health_client, "How much ibuprofen should I take?")["choices"][0]["message"]["content"]
    assert answer.startswith(DOSE_REFUSAL) and "pharmacist" in answer


def test_citations_point_to_real_entries(health_client: TestClient) -> None:
    data = ask(health_client, "What is type 2 diabetes?")
    citations = data["citations"]
    assert [c["index"] for c in citations] == [1]  # the (scripted) answer cites [1] only
    index = health_client.app.state.services.knowledge.open_index()  # type: ignore[attr-defined]
    assert index is not None
    entry = index.get(citations[0]["id"])
    assert entry is not None and entry.title == citations[0]["title"] and entry.url == citations[0]["url"]
    text = data["choices"][0]["message"]["content"]
    assert f"[1] {entry.title}" in text and "diabet" in text.lower()


def test_health_exchange_is_kept_only_with_consent(health_client: TestClient) -> None:
    def ask_as(user: str) -> Any:
        body = {"model": "ember-health", "user": user, "messages": [{"role": "user", "content": "I have a rash"}]}
        return health_client.post("/v1/chat/completions", json=body)

    first = ask_as("pat")
    assert first.status_code == 200 and "x-ember-conversation-id" not in first.headers
    assert health_client.get("/v1/conversations?user=pat").json()["data"] == []
    assert health_client.get("/v1/me/export?user=pat").json()["conversations"] == []
    instant = health_client.post(
        "/v1/chat/completions",
        json={"model": "ember-instant", "user": "pat", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert instant.headers["x-ember-conversation-id"]  # other modes keep history as usual
    resp = health_client.patch("/v1/me/consent?user=pat", json={"health_storage": True})
    assert resp.status_code == 200, resp.text
    kept = ask_as("pat")
    cid = kept.headers["x-ember-conversation-id"]
    stored = health_client.get(f"/v1/conversations/{cid}?user=pat").json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"] and stored[0]["content"] == "I have a rash"


def test_search_reads_a_follow_up_with_its_question_and_image_descriptions() -> None:
    from ember.modes.health import search_text
    from ember.types import Message

    asked = [Message("user", "What is chickenpox?"), Message("assistant", "A viral infection [1]")]
    assert search_text([*asked, Message("user", "and for adults?")]) == "What is chickenpox?\nand for adults?"
    long = "Is chickenpox in adults more serious than it is in young children, and why?"
    assert search_text([*asked, Message("user", long)]) == long
    seen = Message("user", "what is this rash?", descriptions=("[Image 1: guesses …] red spots on an arm",))
    assert search_text([seen]) == "what is this rash?\n[Image 1: guesses …] red spots on an arm"


def test_a_multiple_choice_health_question_is_answered_in_one_short_pass(health_client: TestClient) -> None:
    question = "Which vitamin deficiency causes scurvy?\nA) Vitamin A\nB) Vitamin C\nC) Vitamin D\nD) Vitamin K"
    data = ask(health_client, question)
    engine = health_client.app.state.pipeline.engines.loaded()["chat"]  # type: ignore[attr-defined]
    messages, params = engine.calls[-1]
    assert messages[0].content.startswith('This is a multiple-choice question: start with a line of the form "Answer:')
    assert params.max_tokens == 96
    assert data["citations"]  # the sources are still retrieved and cited
