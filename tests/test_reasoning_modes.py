"""ember-thinking and ember-contemplating on the scripted engine: phases, the thinking budget, the vote and
the synthesis, the trace, concurrency of the agents, and the API fields that carry them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ember.api.app import create_app
from ember.config import Settings
from ember.engines.fake import FakeEngine
from ember.modes.contemplating import majority
from ember.modes.reasoning import CONTEMPLATING_BUDGET, THINKING_BUDGET, number_of, short_answer

from .conftest import make_settings, sse_events

THOUGHT = " ".join(f"step{i}" for i in range(400))  # longer than the low budget allows


def settings_with(tmp_path: Path, agents: int = 3, **options: Any) -> Settings:
    chat = {"engine": "fake", "model": "fake", "ctx_size": 4096, "parallel": 4, "options": options}
    settings = make_settings(tmp_path, chat_fast={"engine": "fake", "model": "fake"}, chat=chat)
    return settings.model_copy(update={"contemplating_agents": agents})


def ask(client: TestClient, model: str, **extra: Any) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": "What is 6 times 7?"}], **extra}
    return client.post("/v1/chat/completions", json=body)


def chat_engine(client: TestClient) -> FakeEngine:
    engine: FakeEngine = client.app.state.pipeline.engines.loaded()["chat"]  # type: ignore[attr-defined]
    return engine


def test_thinking_separates_reasoning_from_content_and_enforces_the_budget(tmp_path: Path) -> None:
    with TestClient(create_app(settings_with(tmp_path, replies=[THOUGHT, "It is 42."]))) as client:
        resp = ask(client, "ember-thinking", reasoning_effort="low")
        assert resp.status_code == 200, resp.text
        message = resp.json()["choices"][0]["message"]
        calls = chat_engine(client).calls
    assert message["content"] == "It is 42."
    assert message["reasoning_content"].split() == THOUGHT.split()[: THINKING_BUDGET["low"]]
    usage = resp.json()["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == THINKING_BUDGET["low"]
    assert usage["completion_tokens"] == THINKING_BUDGET["low"] + 3
    (think_msgs, think_params), (answer_msgs, answer_params) = calls
    assert think_params.max_tokens == THINKING_BUDGET["low"]
    assert "step by step" in think_msgs[0].content
    assert "step255" in answer_msgs[0].content and "step256" not in answer_msgs[0].content  # cut, then forced
    assert answer_params.max_tokens is None  # the answer phase keeps the request's own limits


def test_thinking_streams_reasoning_deltas_before_content(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, replies=["first think", "then answer"])
    with TestClient(create_app(settings)) as client:
        body = {"model": "ember-thinking", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with client.stream("POST", "/v1/chat/completions", json=body) as resp:
            events = sse_events(list(resp.iter_lines()))
    deltas = [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    content = "".join(d.get("content", "") for d in deltas)
    assert (reasoning, content) == ("first think", "then answer")
    assert not any("reasoning_content" in d and d.get("content") for d in deltas)  # never mixed in one delta
    last_reasoning = max(i for i, d in enumerate(deltas) if d.get("reasoning_content"))
    assert all(not d.get("content") for d in deltas[: last_reasoning + 1])


def test_thinking_default_effort_is_medium(tmp_path: Path) -> None:
    with TestClient(create_app(settings_with(tmp_path, replies=[THOUGHT, "ok"]))) as client:
        usage = ask(client, "ember-thinking").json()["usage"]
        (_, think_params), _ = chat_engine(client).calls
    assert think_params.max_tokens == THINKING_BUDGET["medium"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 400  # stopped on its own, under the budget


def test_reasoning_effort_is_validated(tmp_path: Path) -> None:
    with TestClient(create_app(settings_with(tmp_path))) as client:
        resp = ask(client, "ember-thinking", reasoning_effort="extreme")
    assert resp.status_code == 400


def test_contemplating_votes_on_short_answers_and_returns_the_trace(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, replies=["6 times 7 is 42. Answer: 42"])
    with TestClient(create_app(settings)) as client:
        resp = ask(client, "ember-contemplating", include_trace=True, seed=10)
        calls = chat_engine(client).calls
    data = resp.json()
    assert data["choices"][0]["message"]["content"] == "6 times 7 is 42. Answer: 42"
    assert "Vote: 42 (3 of 3 agents)" in data["choices"][0]["message"]["reasoning_content"]
    trace = data["trace"]
    assert [(s["agent"], s["phase"]) for s in trace] == [(a, p) for a in (1, 2, 3) for p in ("draft", "refine")]
    assert all(s["answer"] == "42" for s in trace)
    assert data["usage"]["completion_tokens"] == sum(s["usage"]["completion_tokens"] for s in trace)
    assert len(calls) == 6  # no synthesis pass after a vote
    assert {p.seed for _, p in calls} == {11, 12, 13}
    assert all(p.temperature and p.temperature > 0 for _, p in calls)
    refine = [m for m, _ in calls if "critique" in m[0].content]
    assert len(refine) == 3 and all("Answer: 42" in m[0].content for m in refine)  # each refines its own draft


def test_contemplating_synthesises_long_answers_and_hides_the_trace_unless_asked(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, agents=2, replies=["Paris is lovely in spring and autumn."])
    with TestClient(create_app(settings)) as client:
        data = ask(client, "ember-contemplating").json()
        traced = ask(client, "ember-contemplating", include_trace=True).json()
        calls = chat_engine(client).calls
    assert "trace" not in data
    assert data["choices"][0]["message"]["content"] == "Paris is lovely in spring and autumn."
    assert "merging 2 solutions" in data["choices"][0]["message"]["reasoning_content"]
    assert [s["phase"] for s in traced["trace"]][-1] == "aggregate"
    assert traced["trace"][-1]["agent"] is None
    assert "Solution 2:" in calls[4][0][0].content  # the synthesis pass saw both solutions


def test_contemplating_stays_within_its_total_budget(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, replies=[THOUGHT])
    with TestClient(create_app(settings)) as client:
        data = ask(client, "ember-contemplating", reasoning_effort="low", include_trace=True).json()
    per_pass = CONTEMPLATING_BUDGET["low"] // 7
    assert all(s["usage"]["completion_tokens"] <= per_pass for s in data["trace"])
    assert data["usage"]["completion_tokens"] <= CONTEMPLATING_BUDGET["low"]


def test_contemplating_agents_run_concurrently(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, replies=["one two three four five six seven. Answer: 7"], delay_s=0.03)
    with TestClient(create_app(settings)) as client:
        trace = ask(client, "ember-contemplating", include_trace=True).json()["trace"]
    spent = sum(s["ended_s"] - s["started_s"] for s in trace)
    wall = max(s["ended_s"] for s in trace) - min(s["started_s"] for s in trace)
    assert wall < 0.5 * spent  # three agents at once: about a third


def test_contemplating_agent_failure_is_an_error_envelope(tmp_path: Path) -> None:
    with TestClient(create_app(settings_with(tmp_path, fail_with="boom"))) as client:
        resp = ask(client, "ember-contemplating")
    assert resp.status_code == 502
    assert resp.json()["error"]["code"] == "engine_error"


def test_reasoning_modes_are_listed(tmp_path: Path) -> None:
    with TestClient(create_app(settings_with(tmp_path))) as client:
        ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert {"ember-thinking", "ember-contemplating"} <= set(ids)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so 16 - 3 - 4 = 9, and 9 * 2 = 18.\nAnswer: $18", "18"),
        ("Answer: 1,200.50 dollars", "1200.5"),
        ("The answer is (B) because", "B"),
        ("Answer: C. Mitochondria", "C"),
        ("Answer: it depends on the season and on 3 other things", None),
        ("no conclusion here", None),
        ("Answer: 4\nOn reflection... Answer: 5", "5"),
    ],
)
def test_short_answer(text: str, expected: str | None) -> None:
    assert short_answer(text) == expected


def test_number_of_and_majority() -> None:
    assert number_of("about -3.50 m") == "-3.5"
    assert number_of("none") is None
    assert majority(["42", "41", "42"]) == ("42", 2)
    assert majority(["7", "8", None]) == ("7", 1)  # a tie goes to the first answer
    assert majority(["7", None, None]) == (None, 0)  # too few short answers: synthesis instead
